#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| doximity::fuzzing::jwt_claims(data));
