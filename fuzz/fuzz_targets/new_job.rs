//! cargo-fuzz target `new_job`: see [`kyu_fuzz::new_job`] for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kyu_fuzz::new_job(data));
