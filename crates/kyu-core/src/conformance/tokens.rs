//! API tokens and secrets: what [`TokenStore`](crate::TokenStore) keeps.
//! The server relies on a token being found by its hash only, on names
//! being unique, on revocation taking effect at once, on the first token
//! being made once, and on a secret never changing once stored.

use super::{Ctx, Harness};
use crate::{NewToken, QueuePattern, Scope};

fn token(name: &str, hash: &str) -> NewToken {
    NewToken {
        name: name.into(),
        hash: hash.into(),
        scopes: vec![Scope::Produce, Scope::Read],
        queues: vec!["tenant-a.*".parse::<QueuePattern>().expect("pattern")],
        expires_at: None,
    }
}

/// A token is stored with its scopes, queues, times, and found by its hash.
pub async fn tokens_create_find_list_revoke(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    let mut t = token("web", "aa11");
    t.expires_at = Some(c.now() + chrono::Duration::days(90));
    assert!(c.store.create_token(t.clone()).await.expect("create"));
    let found = c
        .store
        .token_by_hash("aa11")
        .await
        .expect("by hash")
        .expect("found by its hash");
    assert_eq!(found.name, "web");
    assert_eq!(found.scopes, t.scopes);
    assert_eq!(found.queues, t.queues);
    assert_eq!(found.created_at, c.now());
    assert_eq!(found.expires_at, t.expires_at);
    assert!(c
        .store
        .token_by_hash("web")
        .await
        .expect("by hash")
        .is_none());
    assert!(c
        .store
        .create_token(token("cron", "bb22"))
        .await
        .expect("create"));
    let names: Vec<String> = c
        .store
        .list_tokens()
        .await
        .expect("list")
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["cron", "web"], "listed by name");
    assert!(c.store.revoke_token("web").await.expect("revoke"));
    assert!(c
        .store
        .token_by_hash("aa11")
        .await
        .expect("by hash")
        .is_none());
    assert!(!c.store.revoke_token("web").await.expect("revoke twice"));
}

/// A second token with a taken name is refused and changes nothing.
pub async fn tokens_names_are_unique(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    assert!(c
        .store
        .create_token(token("web", "aa11"))
        .await
        .expect("create"));
    assert!(!c
        .store
        .create_token(token("web", "cc33"))
        .await
        .expect("create"));
    assert!(c
        .store
        .token_by_hash("cc33")
        .await
        .expect("by hash")
        .is_none());
    assert!(c
        .store
        .token_by_hash("aa11")
        .await
        .expect("by hash")
        .is_some());
}

/// The first token is made only while there is no token at all.
pub async fn tokens_first_token_only_once(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    assert!(c
        .store
        .create_first_token(token("admin", "aa11"))
        .await
        .expect("first"));
    assert!(!c
        .store
        .create_first_token(token("admin2", "bb22"))
        .await
        .expect("second"));
    assert_eq!(c.store.list_tokens().await.expect("list").len(), 1);
}

/// A secret, once stored, is what every later call gets.
pub async fn secrets_are_written_once(h: &dyn Harness) {
    let c = Ctx::new(h).await;
    assert_eq!(c.store.secret("lease", "one").await.expect("secret"), "one");
    assert_eq!(c.store.secret("lease", "two").await.expect("secret"), "one");
    assert_eq!(c.store.secret("other", "two").await.expect("secret"), "two");
}
