//! Fuzzes JWT header and claims decoding and verification.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dockhand_policy::fuzzing::jwt(data));
