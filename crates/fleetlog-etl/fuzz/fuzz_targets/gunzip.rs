//! Any bytes, as a gzip payload. The decoder (libdeflate, called through `unsafe`) must answer as
//! flate2's multi-member reader does: the same bytes, or an error. Seeds are gzip members, so most
//! inputs are damaged, cut or concatenated gzip rather than noise.
#![no_main]

use std::io::Read;

use fleetlog_etl::gzip::gunzip_into;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut ours = b"left over from the previous record".to_vec();
    let ours = gunzip_into(data, &mut ours).map(|()| ours);
    let mut theirs = Vec::new();
    // Bounded as the decoder is, so a bomb costs both the same.
    let limit = fleetlog_etl::gzip::MAX_DECOMPRESSED + 1;
    let theirs = flate2::read::MultiGzDecoder::new(data).take(limit).read_to_end(&mut theirs).map(|_| theirs);
    match (ours, theirs) {
        (Ok(ours), Ok(theirs)) => assert!(ours == theirs, "inflated differently"),
        (Ok(_), Err(e)) => panic!("read what flate2 refuses: {e}"),
        (Err(_), Ok(theirs)) => {
            assert!(theirs.len() as u64 >= limit, "refused what flate2 reads ({} bytes)", theirs.len())
        }
        (Err(_), Err(_)) => {}
    }
});
