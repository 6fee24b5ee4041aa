//! Brace expansion of shard URLs, as Python's `braceexpand` does it.

use crate::error::{Error, Result};

/// Refuse patterns that would expand to more URLs than this...
const MAX_URLS: usize = 1_000_000;
/// ...or to more bytes of URLs than this (each URL counted with a `String`'s 24 bytes), so a
/// short pattern never costs more than a bounded amount of memory.
const MAX_BYTES: usize = 128 << 20;
const TOO_MANY: &str = "expands to more than a million URLs or 128 MiB of them";
/// Refuse braces nested deeper than this (expansion recurses once per level).
const MAX_DEPTH: usize = 64;

/// Expands a brace pattern into the URLs it names, in order.
///
/// - `{000000..000009}`: an inclusive integer range; when either bound has a leading zero, every
///   number is zero-padded to the longer bound's width. `{0..10..2}` has a step; a range may run
///   down (`{3..1}`). `{a..e}` is a range of letters.
/// - `{a,b,c}`: alternatives, each of which may hold further braces.
/// - Several groups multiply left to right; braces nest. Braces with neither a range nor a comma
///   are kept as written (`a{b}c`). `\{`, `\}` and `\,` are literal.
///
/// Unbalanced braces are an error, and so are a pattern naming more than a million URLs (or
/// 128 MiB of them) and braces nested more than 64 deep.
///
/// ```
/// use atdata_wds::expand_urls;
///
/// assert_eq!(expand_urls("data-{000008..000011}.tar").unwrap(),
///            ["data-000008.tar", "data-000009.tar", "data-000010.tar", "data-000011.tar"]);
/// assert_eq!(expand_urls("{train,val}/{0..1}.tar").unwrap(),
///            ["train/0.tar", "train/1.tar", "val/0.tar", "val/1.tar"]);
/// assert!(expand_urls("data-{0..3.tar").is_err());
/// ```
pub fn expand_urls(pattern: &str) -> Result<Vec<String>> {
    let invalid = |reason: &str| Error::InvalidPattern {
        pattern: pattern.to_owned(),
        reason: reason.to_owned(),
    };
    let urls = expand(pattern, 0).map_err(invalid)?;
    Ok(urls.into_iter().map(|u| unescape(&u)).collect())
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

/// Expands `s` (inside `depth` groups), keeping escapes for `unescape`.
fn expand(s: &str, depth: usize) -> std::result::Result<Vec<String>, &'static str> {
    if depth > MAX_DEPTH {
        return Err("braces nested more than 64 deep");
    }
    let mut out = vec![String::new()];
    let mut rest = s;
    while !rest.is_empty() {
        let (literal, group, after) = next_group(rest)?;
        for u in &mut out {
            u.push_str(literal);
        }
        let Some(inner) = group else { break };
        let alternatives = expand_group(inner, depth + 1)?;
        let total = out
            .len()
            .checked_mul(alternatives.len())
            .filter(|&n| n <= MAX_URLS)
            .ok_or(TOO_MANY)?;
        // Every prefix meets every alternative: the bytes of the product, before building it.
        let prefix_bytes: usize = out.iter().map(String::len).sum();
        let alt_bytes: usize = alternatives.iter().map(String::len).sum();
        let bytes = prefix_bytes
            .checked_mul(alternatives.len())
            .zip(alt_bytes.checked_mul(out.len()))
            .and_then(|(a, b)| a.checked_add(b))
            .and_then(|n| n.checked_add(total * 24))
            .filter(|&n| n <= MAX_BYTES);
        bytes.ok_or(TOO_MANY)?;
        let mut next = Vec::with_capacity(total);
        for prefix in &out {
            for alt in &alternatives {
                next.push(format!("{prefix}{alt}"));
            }
        }
        out = next;
        rest = after;
    }
    Ok(out)
}

/// Splits `s` into the literal text before its first brace group, the group's inside, and what
/// follows the group.
fn next_group(s: &str) -> std::result::Result<(&str, Option<&str>, &str), &'static str> {
    let mut depth = 0usize;
    let mut start = None;
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '{' => {
                if depth == 0 {
                    start = Some(i);
                }
                depth += 1;
            }
            '}' if depth == 0 => return Err("unbalanced braces: `}` without `{`"),
            '}' => {
                depth -= 1;
                if depth == 0
                    && let Some(open) = start
                {
                    return Ok((&s[..open], Some(&s[open + 1..i]), &s[i + 1..]));
                }
            }
            _ => {}
        }
    }
    if depth > 0 {
        return Err("unbalanced braces: `{` without `}`");
    }
    Ok((s, None, ""))
}

/// The alternatives of one group's inside.
fn expand_group(inner: &str, depth: usize) -> std::result::Result<Vec<String>, &'static str> {
    if let Some(range) = range(inner)? {
        return Ok(range);
    }
    let parts = split_top_level(inner);
    if parts.len() == 1 {
        // Neither a range nor a list: the braces stay, their inside is still expanded.
        return Ok(expand(inner, depth)?
            .into_iter()
            .map(|s| format!("{{{s}}}"))
            .collect());
    }
    let mut out = Vec::new();
    for part in parts {
        out.extend(expand(part, depth)?);
        let bytes: usize = out.iter().map(|u| u.len() + 24).sum();
        if out.len() > MAX_URLS || bytes > MAX_BYTES {
            return Err(TOO_MANY);
        }
    }
    Ok(out)
}

fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// `a..b` or `a..b..step`, for integers or single letters.
fn range(inner: &str) -> std::result::Result<Option<Vec<String>>, &'static str> {
    let parts: Vec<&str> = inner.split("..").collect();
    if !(2..=3).contains(&parts.len()) {
        return Ok(None);
    }
    let step = match parts.get(2) {
        Some(s) => match s.parse::<i64>() {
            Ok(0) => 1,
            Ok(v) => v.unsigned_abs(),
            Err(_) => return Ok(None),
        },
        None => 1,
    };
    let (left, right) = (parts[0], parts[1]);
    if let (Ok(a), Ok(b)) = (left.parse::<i64>(), right.parse::<i64>()) {
        if !is_integer(left) || !is_integer(right) {
            return Ok(None);
        }
        let padded = [left, right]
            .iter()
            .any(|s| *s != "0" && *s != "-0" && (s.starts_with('0') || s.starts_with("-0")));
        let width = if padded {
            left.len().max(right.len())
        } else {
            0
        };
        let count = (a.abs_diff(b) / step)
            .checked_add(1)
            .filter(|&n| n <= MAX_URLS as u64)
            .ok_or(TOO_MANY)?;
        // Every value lies between `a` and `b`, so the arithmetic stays within i64 (i128 spares
        // the casts a proof).
        let values = (0..count).map(|k| {
            let offset = i128::from(k) * i128::from(step);
            let v = if a <= b {
                i128::from(a) + offset
            } else {
                i128::from(a) - offset
            };
            v as i64
        });
        return Ok(Some(values.map(|v| format!("{v:0width$}")).collect()));
    }
    let letter = |s: &str| {
        let mut c = s.chars();
        match (c.next(), c.next()) {
            (Some(l), None) if l.is_ascii_alphabetic() => Some(l as u8),
            _ => None,
        }
    };
    if let (Some(a), Some(b)) = (letter(left), letter(right)) {
        let step = step.min(255) as u8;
        let mut out = Vec::new();
        let mut c = a;
        loop {
            out.push(char::from(c).to_string());
            let next = if a <= b {
                c.checked_add(step).filter(|&n| n <= b)
            } else {
                c.checked_sub(step).filter(|&n| n >= b)
            };
            match next {
                Some(n) => c = n,
                None => break,
            }
        }
        return Ok(Some(out));
    }
    Ok(None)
}

fn is_integer(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_nesting_and_huge_ranges_are_errors_not_overflows() {
        let deep = format!("{}x{}", "{a,".repeat(5000), "}".repeat(5000));
        assert!(
            expand_urls(&deep)
                .unwrap_err()
                .to_string()
                .contains("64 deep")
        );
        let shallow = format!("{}x{}", "{a,".repeat(60), "}".repeat(60));
        assert_eq!(expand_urls(&shallow).unwrap().len(), 61);
        let err = expand_urls("{-9223372036854775808..9223372036854775807}").unwrap_err();
        assert!(err.to_string().contains("a million"), "{err}");
        // Few URLs, but long ones: bounded by bytes too.
        let long = format!("{}{{0..99999}}{{0..9}}", "x".repeat(200));
        assert!(
            expand_urls(&long)
                .unwrap_err()
                .to_string()
                .contains("128 MiB")
        );
        assert_eq!(
            expand_urls("{9223372036854775806..9223372036854775807}").unwrap(),
            ["9223372036854775806", "9223372036854775807"]
        );
        assert_eq!(
            expand_urls("{-9223372036854775808..-9223372036854775807}").unwrap(),
            ["-9223372036854775808", "-9223372036854775807"]
        );
    }

    fn ex(p: &str) -> Vec<String> {
        expand_urls(p).unwrap()
    }

    #[test]
    fn ranges_keep_zero_padding() {
        assert_eq!(ex("{000000..000002}"), ["000000", "000001", "000002"]);
        assert_eq!(ex("{08..10}"), ["08", "09", "10"]);
        assert_eq!(ex("{8..10}"), ["8", "9", "10"]);
        assert_eq!(ex("{0..10..5}"), ["0", "5", "10"]);
        assert_eq!(ex("{3..1}"), ["3", "2", "1"]);
        assert_eq!(ex("{-1..1}"), ["-1", "0", "1"]);
        assert_eq!(ex("{a..c}"), ["a", "b", "c"]);
        assert_eq!(ex("{a..e..2}"), ["a", "c", "e"]);
    }

    #[test]
    fn lists_nest_and_multiply() {
        assert_eq!(ex("x{a,b{1..2}}y"), ["xay", "xb1y", "xb2y"]);
        assert_eq!(ex("{a,b}{c,d}"), ["ac", "ad", "bc", "bd"]);
        assert_eq!(ex("{a,}"), ["a", ""]);
        assert_eq!(ex("plain.tar"), ["plain.tar"]);
        assert_eq!(ex("a b.tar"), ["a b.tar"]);
    }

    #[test]
    fn braces_without_range_or_list_stay() {
        assert_eq!(ex("a{b}c"), ["a{b}c"]);
        assert_eq!(ex("a{}c"), ["a{}c"]);
        assert_eq!(ex(r"a\{0..1\}c"), ["a{0..1}c"]);
        assert_eq!(ex(r"{a\,b,c}"), ["a,b", "c"]);
    }

    #[test]
    fn malformed_patterns_are_errors() {
        for p in ["{0..2", "0..2}", "{a,{b}", "a}b{", "{0..99999999999}"] {
            assert!(
                matches!(expand_urls(p), Err(Error::InvalidPattern { .. })),
                "{p}"
            );
        }
    }
}
