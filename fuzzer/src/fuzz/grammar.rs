//! Extra seeds generated from an HTTP request grammar with LibAFL's Nautilus.
//!
//! The grammar (`seeds/http-grammar.json`, Nautilus's JSON format: `[["NT", "production"], ...]`,
//! `{NT}` for a nonterminal, `\{`/`\}` for literal braces, the first rule's nonterminal is the
//! start) describes valid requests to the pserv API; the fuzzer's mutators break them.

use anyhow::{bail, Context, Result};
use libafl::generators::{Generator, NautilusContext, NautilusGenerator};
use libafl::inputs::NautilusInput;
use libafl::state::{HasRand, NopState};
use libafl_bolts::rands::Rand;
use std::collections::HashSet;
use std::path::Path;

/// The built-in grammar of the pserv API.
pub const BUILTIN: &str = include_str!("../../../seeds/http-grammar.json");
/// Deepest derivation tree Nautilus may build.
const TREE_DEPTH: usize = 12;

/// `count` distinct requests from the grammar in `path` (or the built-in one), named
/// `grammar-NNN`. The same grammar always gives the same seeds.
pub fn seeds(path: Option<&Path>, count: usize) -> Result<Vec<(String, Vec<u8>)>> {
    let (text, origin) = match path {
        Some(p) => (
            std::fs::read_to_string(p).with_context(|| format!("cannot read the grammar {}", p.display()))?,
            p.display().to_string(),
        ),
        None => (BUILTIN.to_string(), "the built-in grammar".to_string()),
    };
    let rules: Vec<Vec<String>> = serde_json::from_str(&text).with_context(|| {
        format!("{origin} is not a Nautilus JSON grammar: expected [[\"NONTERMINAL\", \"production\"], ...]")
    })?;
    if rules.is_empty() || rules.iter().any(|r| r.len() != 2 || !r[0].starts_with(|c: char| c.is_ascii_uppercase())) {
        bail!("{origin}: every rule must be a pair [\"NONTERMINAL\", \"production\"] with an upper-case nonterminal");
    }
    let context = NautilusContext::new(TREE_DEPTH, &rules);
    let mut generator = NautilusGenerator::new(&context);
    let mut state = NopState::<NautilusInput>::new();
    state.rand_mut().set_seed(0x5eed);
    let mut seen = HashSet::new();
    let mut seeds = Vec::new();
    // Small grammars have few distinct outputs: give up after a bounded number of tries.
    for _ in 0..count * 20 {
        if seeds.len() == count {
            break;
        }
        let input = generator.generate(&mut state)?;
        let mut bytes = Vec::new();
        input.unparse(&context, &mut bytes);
        if !bytes.is_empty() && seen.insert(bytes.clone()) {
            seeds.push((format!("grammar-{:03}", seeds.len()), bytes));
        }
    }
    Ok(seeds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzz::http::Conversation;

    #[test]
    fn builtin_grammar_gives_distinct_parseable_requests_with_matching_lengths() {
        let seeds = seeds(None, 60).unwrap();
        assert_eq!(seeds.len(), 60);
        assert!(seeds == super::seeds(None, 60).unwrap(), "not deterministic");
        for (name, bytes) in &seeds {
            let conv = Conversation::parse(bytes).unwrap_or_else(|| panic!("{name} does not parse"));
            assert!(conv.rest.is_empty(), "{name}: trailing bytes");
            for r in &conv.requests {
                assert!(r.terminated);
                if r.is_chunked() {
                    let (used, _) = crate::fuzz::http::chunked(&r.body, &r.eol).expect("a whole chunked body");
                    assert_eq!(used, r.body.len(), "{name}");
                    continue;
                }
                let declared: usize =
                    r.header("Content-Length").map_or(0, |v| std::str::from_utf8(v).unwrap().parse().unwrap());
                assert_eq!(declared, r.body.len(), "{name}");
            }
        }
        assert!(seeds.iter().any(|(_, b)| b.starts_with(b"POST /api/login")));
        let gets = seeds.iter().filter(|(_, b)| b.starts_with(b"GET ") || b.starts_with(b"HEAD ")).count();
        assert!(gets > 15, "only {gets} of 60 start with GET/HEAD");
        assert!(seeds.iter().any(|(_, b)| b.windows(6).any(|w| w == b"Range:")));
        let has = |s: &[u8]| seeds.iter().any(|(_, b)| b.windows(s.len()).any(|w| w == s));
        assert!(has(b"Transfer-Encoding: chunked") && has(b"\\u") && has(b"%2e%2e"), "HTTP structure in the grammar");
    }

    #[test]
    fn a_broken_grammar_is_a_plain_error() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().to_path_buf();
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("g.json");
        std::fs::write(&file, "[[\"start\", \"x\"]]").unwrap();
        assert!(seeds(Some(&file), 5).unwrap_err().to_string().contains("upper-case nonterminal"));
        std::fs::write(&file, "{").unwrap();
        assert!(seeds(Some(&file), 5).unwrap_err().to_string().contains("is not a Nautilus JSON grammar"));
    }
}
