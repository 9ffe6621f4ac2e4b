#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringport_fuzz::queue::queue_frames(data));
