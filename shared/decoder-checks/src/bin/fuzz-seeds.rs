//! Writes the fuzz targets' seed inputs into `<dir>/<target>/` (default `fuzz/corpus`):
//! every body type's example for `bodies`, valid and near-valid identifiers for `ids`,
//! amounts for `money`, a well-formed delivery per consumed type for `envelope`. Files are
//! named after what they hold, so running it again adds nothing twice and keeps what the
//! fuzzer added. `make fuzz` runs it first.

use decoder_checks::{bodies, envelope, examples, mutate};
use std::path::{Path, PathBuf};

fn write(dir: &Path, name: &str, data: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(format!("seed-{name}")), data)
}

fn main() -> std::io::Result<()> {
    let root = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "fuzz/corpus".into()));
    let mut count = 0;

    let dir = root.join("bodies");
    for (i, (file, example)) in examples::all().iter().enumerate() {
        let body = serde_json::to_vec(example).expect("a JSON value serialises");
        write(&dir, file, &bodies::fuzz_input(i, &body))?;
        count += 1;
    }

    let texts: Vec<&str> = [
        examples::ID_NUMBER,
        examples::CREDIT_CODE,
        examples::PHONE,
        "+86 13812345678",
        "2024-03",
        "420100",
    ]
    .into_iter()
    .chain(mutate::INTERESTING.iter().copied())
    .collect();
    for (i, t) in texts.iter().enumerate() {
        write(&root.join("ids"), &format!("{i:02}"), t.as_bytes())?;
        count += 1;
    }
    for (i, t) in ["123.45", "0.5", "100", "-7.00", "007.10", " 8000\n"]
        .iter()
        .chain(mutate::INTERESTING)
        .enumerate()
    {
        write(&root.join("money"), &format!("{i:02}"), t.as_bytes())?;
        count += 1;
    }

    // `envelope` reads its input through `arbitrary`, which has no inverse: its seeds are
    // found by trying deterministic pseudo-random inputs and keeping the first ones that
    // reach each outcome (a body that decodes as its type, one that does not, no type).
    let mut kept = [0_u32; 4];
    let mut state = 0x5eed_u64;
    for attempt in 0..200_000_u32 {
        if kept.iter().all(|&k| k >= 24) {
            break;
        }
        let data: Vec<u8> = (0..128).map(|_| splitmix(&mut state) as u8).collect();
        let mut u = arbitrary::Unstructured::new(&data);
        let Ok(d) = <envelope::RawDelivery as arbitrary::Arbitrary>::arbitrary(&mut u) else {
            continue;
        };
        let slot = match envelope::check(&d) {
            envelope::Outcome::Body(true) => 0,
            envelope::Outcome::Body(false) => 1,
            envelope::Outcome::Unknown => 2,
            envelope::Outcome::Malformed => 3,
        };
        if kept[slot] < 24 {
            kept[slot] += 1;
            write(&root.join("envelope"), &format!("{slot}-{attempt}"), &data)?;
            count += 1;
        }
    }

    println!("{count} seed inputs in {}", root.display());
    Ok(())
}

fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
