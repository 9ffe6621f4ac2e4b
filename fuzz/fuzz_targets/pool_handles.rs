#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringport_fuzz::pool::pool_handles(data));
