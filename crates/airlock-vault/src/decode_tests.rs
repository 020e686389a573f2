use std::io::Write as _;

use super::*;

pub(crate) fn encode(coding: Coding, data: &[u8]) -> Vec<u8> {
    match coding {
        Coding::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        Coding::Deflate => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        Coding::Brotli => {
            let mut out = Vec::new();
            {
                let mut e = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
                e.write_all(data).unwrap();
            }
            out
        }
        Coding::Zstd => zstd::encode_all(data, 3).unwrap(),
    }
}

fn raw_deflate(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Decodes `chunks` with `room` bytes of output per call, checking the bound on every call.
fn decode_chunks(coding: Coding, chunks: &[&[u8]], room: usize) -> Result<Vec<u8>, DecodeError> {
    let mut d = ContentDecoder::new(coding)?;
    let mut out = Vec::new();
    for chunk in chunks {
        let mut rest = *chunk;
        while !rest.is_empty() {
            let before = out.len();
            let used = d.decode(rest, &mut out, room)?;
            assert!(out.len() - before <= room, "{coding}: produced more than the room");
            assert!(used > 0 || out.len() > before, "{coding}: no progress");
            rest = &rest[used..];
        }
    }
    loop {
        let before = out.len();
        d.decode(&[], &mut out, room)?;
        assert!(out.len() - before <= room);
        if out.len() == before {
            break;
        }
    }
    d.finish()?;
    Ok(out)
}

/// Text that compresses well, with a repeated key, so back-references span chunks.
fn sample(len: usize) -> Vec<u8> {
    let mut s = Vec::with_capacity(len);
    let mut i = 0u32;
    while s.len() < len {
        s.extend_from_slice(format!("{{\"n\":{i},\"key\":\"sk-live-REAL-4f9a8b7c\"}}\n").as_bytes());
        i = i.wrapping_mul(1_103_515_245).wrapping_add(12_345) % 1000;
    }
    s.truncate(len);
    s
}

const ALL: [Coding; 4] = [Coding::Gzip, Coding::Deflate, Coding::Brotli, Coding::Zstd];

#[test]
fn every_coding_round_trips_whatever_the_chunking_and_room() {
    for coding in ALL {
        for len in [0, 1, 100, 70_000] {
            let data = sample(len);
            let enc = encode(coding, &data);
            for room in [1, 7, 4096, 65_536] {
                if len == 70_000 && room < 4096 {
                    continue;
                }
                assert_eq!(
                    decode_chunks(coding, &[&enc], room).unwrap(),
                    data,
                    "{coding} {len} {room}"
                );
                let bytes: Vec<&[u8]> = enc.chunks(1).collect();
                if len <= 100 {
                    assert_eq!(decode_chunks(coding, &bytes, room).unwrap(), data, "{coding} bytewise");
                }
                let split: Vec<&[u8]> = enc.chunks(333).collect();
                assert_eq!(decode_chunks(coding, &split, room).unwrap(), data, "{coding} 333");
            }
        }
    }
}

#[test]
fn deflate_accepts_zlib_and_raw_streams() {
    let data = sample(5000);
    let raw = raw_deflate(&data);
    for chunk in [1, 2, 3, 5000] {
        let chunks: Vec<&[u8]> = raw.chunks(chunk).collect();
        assert_eq!(decode_chunks(Coding::Deflate, &chunks, 4096).unwrap(), data);
    }
}

#[test]
fn gzip_optional_header_fields_and_several_members() {
    let data = sample(3000);
    let mut e = flate2::GzBuilder::new()
        .filename("file.json")
        .comment("a comment")
        .extra(vec![1, 2, 3, 4])
        .write(Vec::new(), flate2::Compression::fast());
    e.write_all(&data).unwrap();
    let fancy = e.finish().unwrap();
    let two = [fancy.clone(), encode(Coding::Gzip, b"and more")].concat();
    for chunk in [1, 4, 11, 100_000] {
        let chunks: Vec<&[u8]> = two.chunks(chunk).collect();
        let out = decode_chunks(Coding::Gzip, &chunks, 512).unwrap();
        assert_eq!(out, [&data[..], b"and more"].concat());
    }
}

#[test]
fn corrupt_truncated_and_trailing_data_are_errors() {
    let data = sample(2000);
    for coding in ALL {
        let enc = encode(coding, &data);
        let cut = &enc[..enc.len() - 3];
        assert_eq!(
            decode_chunks(coding, &[cut], 4096).unwrap_err(),
            DecodeError::Truncated(coding),
            "{coding}"
        );
        let mut bad = enc.clone();
        let mid = bad.len() / 2;
        for b in &mut bad[mid..mid + 8] {
            *b ^= 0x5A;
        }
        assert!(decode_chunks(coding, &[&bad], 4096).is_err(), "{coding} flipped bytes");
        let garbage = [&b"not compressed at all, just text"[..]];
        assert!(decode_chunks(coding, &garbage, 4096).is_err(), "{coding} plain text");
    }
    for coding in [Coding::Deflate, Coding::Brotli] {
        let extra = [encode(coding, &data), b"tail".to_vec()].concat();
        assert_eq!(
            decode_chunks(coding, &[&extra], 4096).unwrap_err(),
            DecodeError::TrailingData(coding),
            "{coding}"
        );
    }
    let extra = [encode(Coding::Gzip, &data), b"tail".to_vec()].concat();
    assert_eq!(
        decode_chunks(Coding::Gzip, &[&extra], 4096).unwrap_err(),
        DecodeError::Corrupt(Coding::Gzip)
    );
    // A gzip CRC that does not match.
    let mut crc = encode(Coding::Gzip, &data);
    let at = crc.len() - 8;
    crc[at] ^= 1;
    assert_eq!(
        decode_chunks(Coding::Gzip, &[&crc], 4096).unwrap_err(),
        DecodeError::Corrupt(Coding::Gzip)
    );
}

#[test]
fn a_decompression_bomb_is_decoded_in_bounded_steps() {
    // 8 MiB of zeros: a few KiB coded; each call still produces at most `room`.
    let zeros = vec![0u8; 8 << 20];
    for coding in ALL {
        let enc = encode(coding, &zeros);
        assert!(enc.len() < 64 * 1024, "{coding}: {}", enc.len());
        let mut d = ContentDecoder::new(coding).unwrap();
        let mut out = Vec::new();
        let used = d.decode(&enc, &mut out, 65_536).unwrap();
        assert!(out.len() <= 65_536 && used <= enc.len(), "{coding}");
    }
}

#[test]
fn zstd_windows_over_8_mib_are_refused() {
    let mut e = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
    e.window_log(25).unwrap();
    e.long_distance_matching(true).unwrap();
    e.write_all(&sample(1 << 20)).unwrap();
    let enc = e.finish().unwrap();
    assert_eq!(
        decode_chunks(Coding::Zstd, &[&enc], 65_536).unwrap_err(),
        DecodeError::Corrupt(Coding::Zstd)
    );
}

#[test]
fn tokens_name_the_codings_airlock_decodes() {
    assert_eq!(Coding::from_token(" GZip "), Some(Coding::Gzip));
    assert_eq!(Coding::from_token("x-gzip"), Some(Coding::Gzip));
    assert_eq!(Coding::from_token("br"), Some(Coding::Brotli));
    assert_eq!(Coding::from_token("zstd"), Some(Coding::Zstd));
    assert_eq!(Coding::from_token("deflate"), Some(Coding::Deflate));
    for other in ["compress", "x-custom", "identity", ""] {
        assert_eq!(Coding::from_token(other), None, "{other}");
    }
    assert_eq!(
        DecodeError::Truncated(Coding::Brotli).to_string(),
        "the br data ends before its stream is complete"
    );
}
