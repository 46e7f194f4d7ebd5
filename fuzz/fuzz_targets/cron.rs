//! cargo-fuzz target `cron`: see [`kyu_fuzz::cron`] for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kyu_fuzz::cron(data));
