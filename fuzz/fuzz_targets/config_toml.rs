//! cargo-fuzz target `config_toml`: see [`kyu_fuzz::config_toml`] for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kyu_fuzz::config_toml(data));
