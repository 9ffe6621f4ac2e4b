#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringport_fuzz::typed::typed_decode(data));
