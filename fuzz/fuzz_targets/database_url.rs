//! cargo-fuzz target `database_url`: see [`kyu_fuzz::database_url`] for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kyu_fuzz::database_url(data));
