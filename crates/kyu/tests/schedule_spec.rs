//! A schedule is declared as it is written: cron and zone as text, a bad
//! one refused by `kyu.schedule`, naming the field, with nothing written.

mod common;

use chrono::{Datelike, Timelike, Weekday};
use common::{fresh, Backend};
use kyu::{Error, NewJob, ScheduleSpec};

#[tokio::test]
async fn schedule_spec_takes_cron_and_zone_as_text() {
    let (kyu, _dir) = fresh(Backend::Sqlite).await;
    let rec = kyu
        .schedule(
            ScheduleSpec::new(
                "weekly-report",
                "0 9 * * MON",
                NewJob::new("report", serde_json::json!({})),
            )
            .zone("Asia/Tokyo"),
        )
        .await
        .unwrap();
    assert_eq!(rec.spec.cron.to_string(), "0 9 * * MON");
    assert_eq!(rec.spec.zone.name(), "Asia/Tokyo");
    let next = rec
        .next_fire_at
        .expect("a next fire time")
        .with_timezone(&rec.spec.zone);
    assert_eq!(
        (next.weekday(), next.hour(), next.minute()),
        (Weekday::Mon, 9, 0)
    );
}

#[tokio::test]
async fn bad_cron_or_zone_text_is_refused_at_schedule_naming_the_field() {
    let (kyu, _dir) = fresh(Backend::Sqlite).await;
    let job = || NewJob::new("report", serde_json::json!({}));
    for (spec, field, says) in [
        (ScheduleSpec::new("a", "0 25 * * *", job()), "cron", "25"),
        (
            ScheduleSpec::new("b", "0 9 * * *", job()).zone("Asia/Tokio"),
            "timezone",
            "Asia/Tokio",
        ),
    ] {
        match kyu.schedule(spec).await {
            Err(Error::Invalid(e)) => {
                assert_eq!(e.field, field, "{e}");
                assert!(e.to_string().contains(says), "{e}");
            }
            other => panic!("expected an invalid {field}, got {other:?}"),
        }
    }
    assert!(kyu.schedules().await.unwrap().is_empty(), "nothing written");
}
