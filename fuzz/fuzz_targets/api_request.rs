//! cargo-fuzz target `api_request`: see [`kyu_fuzz::api_request`] for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kyu_fuzz::api_request(data));
