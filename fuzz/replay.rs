//! The fuzz targets on stable Rust, under `cargo test`: each target runs over its committed
//! corpus (`fuzz/corpus/<target>/`), then over inputs proptest derives from that corpus (bit
//! flips, inserted and deleted bytes, dictionary tokens, splices). The coverage-guided engine
//! (`cargo fuzz`, `fuzz/fuzz_targets/`) runs the same functions; a crash it finds goes into the
//! corpus, so this replay keeps it fixed.
//!
//! Included by the crates' `tests/fuzz_targets.rs` with `#[path]`.

#![allow(dead_code)] // Each test crate uses part of it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

use proptest::prelude::*;
use proptest::sample::Index;

/// Generated cases per target: `FUZZ_CASES`, else 256 (a few seconds for all targets).
pub(crate) fn config() -> ProptestConfig {
    let cases = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        // A failure is printed shrunk; it goes into the corpus as `regression-*`.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

/// The committed corpus of `target`, sorted by file name. It must not be empty.
pub(crate) fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir(target);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "corpus {} is empty", dir.display());
    files
}

/// Runs `target` on every file of its corpus and fails naming every file that panicked.
pub(crate) fn replay(target: &str, run: fn(&[u8])) {
    let files = corpus(target);
    let panicked: Vec<&str> = files
        .iter()
        .filter(|(_, data)| catch_unwind(AssertUnwindSafe(|| run(data))).is_err())
        .map(|(name, _)| name.as_str())
        .collect();
    assert!(
        panicked.is_empty(),
        "{target}: {} of {} corpus files panicked: {panicked:?}",
        panicked.len(),
        files.len()
    );
}

/// One edit of a seed.
#[derive(Clone, Debug)]
enum Edit {
    Flip(Index, u8),
    Set(Index, u8),
    Insert(Index, u8),
    Token(Index, Index),
    Delete(Index, u8),
    Truncate(Index),
    Splice(Index, Index, Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<Index>(), 0u8..8).prop_map(|(i, b)| Edit::Flip(i, b)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
        (any::<Index>(), any::<Index>()).prop_map(|(i, t)| Edit::Token(i, t)),
        (any::<Index>(), 1u8..16).prop_map(|(i, n)| Edit::Delete(i, n)),
        any::<Index>().prop_map(Edit::Truncate),
        (any::<Index>(), any::<Index>(), any::<Index>())
            .prop_map(|(i, s, p)| Edit::Splice(i, s, p)),
    ]
}

fn apply(mut data: Vec<u8>, edits: &[Edit], seeds: &[Vec<u8>], tokens: &[&[u8]]) -> Vec<u8> {
    let at = |i: &Index, len: usize| i.index(len + 1);
    for e in edits {
        match e {
            Edit::Flip(i, bit) if !data.is_empty() => {
                let i = i.index(data.len());
                data[i] ^= 1 << bit;
            }
            Edit::Set(i, b) if !data.is_empty() => {
                let i = i.index(data.len());
                data[i] = *b;
            }
            Edit::Insert(i, b) => data.insert(at(i, data.len()), *b),
            Edit::Token(i, t) if !tokens.is_empty() => {
                let i = at(i, data.len());
                let token = tokens[t.index(tokens.len())];
                data.splice(i..i, token.iter().copied());
            }
            Edit::Delete(i, n) if !data.is_empty() => {
                let i = i.index(data.len());
                let end = (i + usize::from(*n)).min(data.len());
                data.drain(i..end);
            }
            Edit::Truncate(i) => data.truncate(at(i, data.len())),
            Edit::Splice(i, s, p) => {
                let other = &seeds[s.index(seeds.len())];
                let from = at(p, other.len());
                let i = at(i, data.len());
                data.splice(i..i, other[from..].iter().copied());
            }
            _ => {}
        }
    }
    data
}

/// Inputs derived from `target`'s corpus: a seed with up to eight edits, the tokens of
/// `dictionary` among them.
pub(crate) fn mutated(
    target: &str,
    dictionary: &'static [&'static [u8]],
) -> impl Strategy<Value = Vec<u8>> + use<> {
    let seeds: Vec<Vec<u8>> = corpus(target).into_iter().map(|(_, d)| d).collect();
    let count = seeds.len();
    (0..count, prop::collection::vec(edit(), 0..8))
        .prop_map(move |(s, edits)| apply(seeds[s].clone(), &edits, &seeds, dictionary))
}

/// The two replay tests of each target, named by the caller: `corpus` runs the target over its
/// committed corpus, `mutated` over inputs derived from it with the tokens of `dictionary`.
/// Used as `replay::corpus_and_mutations! { target: corpus, mutated, DICTIONARY; … }` with the
/// crate's `fuzzing` module in scope.
macro_rules! corpus_and_mutations {
    ($($target:ident: $corpus:ident, $mutated:ident, $dictionary:expr;)*) => {
        $(
            #[test]
            fn $corpus() {
                replay::replay(stringify!($target), fuzzing::$target);
            }
        )*
        proptest! {
            #![proptest_config(replay::config())]
            $(
                #[test]
                fn $mutated(input in replay::mutated(stringify!($target), $dictionary)) {
                    fuzzing::$target(&input);
                }
            )*
        }
    };
}
pub(crate) use corpus_and_mutations;
