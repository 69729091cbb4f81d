//! Checking configuration: how a problem is named (file and key), the
//! durations every section writes, and the environment as read once, at load.
//! A leaf module: every section's owner uses it, it uses none of them.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// One thing wrong with the configuration, named so an operator can find it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub key: String,
    pub why: String,
}

impl Problem {
    pub fn new(file: impl fmt::Display, key: impl Into<String>, why: impl Into<String>) -> Self {
        Problem {
            file: file.to_string(),
            key: key.into(),
            why: why.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.file, self.key, self.why)
    }
}

/// Every problem found while loading; loading never stops at the first one.
#[derive(Debug, Clone)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// A duration written as `"250ms"`, `"5s"` or `"10m"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map(HumanDuration)
            .map_err(|e| serde::de::Error::custom(format!("invalid duration {text:?}: {e}")))
    }
}

/// Whole seconds, for section defaults.
pub(crate) fn secs(n: u64) -> HumanDuration {
    HumanDuration(Duration::from_secs(n))
}

/// The environment variables the gateway reads, captured once when the
/// configuration is loaded, so nothing changes under a running gateway and
/// tests pass their own instead of mutating the process's.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Environment {
    vars: BTreeMap<String, String>,
}

/// Variables whose values are secrets: never printed.
const SECRET_VARIABLES: &[&str] = &["CMG_SHARED_PASSWORD", "CMG_SHARED_KEY"];

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = self.vars.iter().map(|(k, v)| {
            let value = if SECRET_VARIABLES.contains(&k.as_str()) {
                "<set>"
            } else {
                v.as_str()
            };
            (k, value)
        });
        f.debug_map().entries(shown).finish()
    }
}

/// Every variable the gateway itself looks at (the AWS SDK's credential chain
/// reads its own).
const VARIABLES: &[&str] = &[
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    // Where the shared config file is and which profile in it: its region is
    // the last link of the region chain.
    "AWS_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "HOME",
    "AWS_ENDPOINT_URL_CONNECT",
    // Where supervisors' sessions are assumed (source_identity_claim).
    "AWS_ENDPOINT_URL_STS",
    "AWS_ENDPOINT_URL",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
    // The shared server's password and the key its facts are sealed with.
    "CMG_SHARED_PASSWORD",
    "CMG_SHARED_KEY",
];

impl Environment {
    /// The process environment, now.
    pub fn process() -> Environment {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// The variables `lookup` gives (tests; the process environment otherwise).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Environment {
        Environment {
            vars: VARIABLES
                .iter()
                .filter_map(|k| lookup(k).map(|v| (k.to_string(), v)))
                .collect(),
        }
    }

    /// A variable's value; an empty value counts as unset.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }
}

/// What a section's check is given: where problems go, the folder relative
/// paths resolve against, and the environment.
pub(crate) struct Check<'a> {
    pub(crate) file: String,
    pub(crate) base: PathBuf,
    pub(crate) env: &'a Environment,
    pub(crate) problems: Vec<Problem>,
}

impl<'a> Check<'a> {
    pub(crate) fn new(path: &Path, env: &'a Environment) -> Self {
        Check {
            file: path.display().to_string(),
            base: path.parent().unwrap_or_else(|| Path::new("")).to_path_buf(),
            env,
            problems: Vec::new(),
        }
    }

    /// Records a problem with `key`.
    pub(crate) fn bad(&mut self, key: impl Into<String>, why: impl Into<String>) {
        self.problems.push(Problem::new(&self.file, key, why));
    }

    /// A path from the file, resolved against the file's folder.
    pub(crate) fn resolve(&self, path: &Path) -> PathBuf {
        self.base.join(path)
    }
}

/// Parses a TOML document into `T`, reporting every problem serde meets, not
/// only the first: after each one the offending `key = value` line is set
/// aside and the document parsed again, so one run of `check` names them all.
/// `None` when the document cannot be parsed even without those lines.
///
/// A line set aside is blanked with spaces of its own length, not removed, so
/// every byte offset in the parsed document (its `toml::Spanned` values) is
/// the same offset in `text`, and [`position`] of it names the line the
/// operator wrote.
pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(
    text: &str,
    file: &str,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    const MAX_ROUNDS: usize = 32;
    let mut current = text.to_owned();
    for _ in 0..MAX_ROUNDS {
        let err = match toml::from_str::<T>(&current) {
            Ok(parsed) => return Some(parsed),
            Err(e) => e,
        };
        problems.push(Problem::new(
            file,
            toml_error_key(&current, &err),
            err.message().trim().to_string(),
        ));
        let span = err.span()?;
        let (start, end) = line_around(&current, span.start);
        let line = &current[start..end];
        let is_assignment = {
            let l = line.trim_start();
            !l.starts_with('[') && l.contains('=')
        };
        if !is_assignment {
            // A table header or a syntax error: nothing safe to set aside.
            return None;
        }
        let blank = " ".repeat(line.len());
        current.replace_range(start..end, &blank);
    }
    None
}

/// The byte range of the line holding byte `offset`, without its line end.
fn line_around(text: &str, offset: usize) -> (usize, usize) {
    let offset = floor_char_boundary(text, offset);
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let end = if text[start..end].ends_with('\r') { end - 1 } else { end };
    (start, end)
}

/// `offset`, moved back to a character boundary of `text` (and into it).
fn floor_char_boundary(text: &str, offset: usize) -> usize {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// Where byte `offset` of `text` is, as `line L, column C`, both counted
/// from 1 and the column in characters, as toml's own messages and editors
/// count it: the prefix of every problem that names a place in a file.
pub(crate) fn position(text: &str, offset: usize) -> String {
    let before = &text[..floor_char_boundary(text, offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    format!("line {line}, column {column}")
}

/// Names the key a TOML error is about, as `line N, column M: key` (the key
/// left out when the error is about the document as a whole).
pub(crate) fn toml_error_key(text: &str, err: &toml::de::Error) -> String {
    let Some(span) = err.span() else {
        return "(toml)".to_string();
    };
    let before = &text[..floor_char_boundary(text, span.start)];
    let at = position(text, span.start);
    let table = before
        .lines()
        .rev()
        .find_map(|l| {
            let l = l.trim();
            (l.starts_with('[') && l.ends_with(']')).then(|| l.trim_matches(|c| c == '[' || c == ']').to_string())
        })
        .unwrap_or_default();
    let line_text = text[before.rfind('\n').map_or(0, |i| i + 1)..]
        .lines()
        .next()
        .unwrap_or("")
        .trim();
    if line_text.starts_with('[') {
        // The error is about a table header itself (e.g. a table given twice).
        let header = line_text.trim_matches(|c| c == '[' || c == ']').trim();
        return format!("{at}: {header}");
    }
    // The key is on the error's line, before the `=`, whether the error
    // points at the key (unknown field) or at its value (bad duration).
    let key = line_text
        .split('=')
        .next()
        .unwrap_or(line_text)
        .trim()
        .trim_matches('"');
    match (table.is_empty(), key.is_empty()) {
        (_, true) => at,
        (true, false) => format!("{at}: {key}"),
        (false, false) => format!("{at}: {table}.{key}"),
    }
}

/// `us-east-1`, `eu-west-2`, `us-gov-west-1`: lower-case words and digits joined by dashes.
pub(crate) fn valid_region(region: &str) -> bool {
    !region.is_empty()
        && region.len() <= 32
        && region.split('-').count() >= 3
        && region
            .split('-')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Doc {
        #[serde(default)]
        a: Option<u32>,
        #[serde(default)]
        b: Option<HumanDuration>,
    }

    #[test]
    fn every_bad_line_is_reported_not_only_the_first() {
        let mut problems = Vec::new();
        let parsed: Option<Doc> = parse_toml("a = \"x\"\nb = \"soon\"\nc = 1\n", "f.toml", &mut problems);
        assert!(parsed.is_some());
        let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            ["line 1, column 5: a", "line 2, column 5: b", "line 3, column 1: c"]
        );
    }

    #[test]
    fn a_position_counts_lines_and_characters_from_one() {
        let text = "a = 1\r\nnamé = \"x\"\n";
        assert_eq!(position(text, 0), "line 1, column 1");
        let value = text.find("\"x\"").unwrap();
        assert_eq!(position(text, value), "line 2, column 8", "é is one column");
        assert_eq!(position(text, text.len() + 5), "line 3, column 1");
    }

    #[test]
    fn a_line_set_aside_keeps_the_offsets_of_the_file() {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Spans {
            #[serde(default)]
            a: Option<u32>,
            z: toml::Spanned<String>,
        }
        let text = "a = \"not a number, and long\"\r\nb = \"é\"\r\nz = \"here\"\r\n";
        let mut problems = Vec::new();
        let parsed: Spans = parse_toml(text, "f.toml", &mut problems).unwrap();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(parsed.a, None);
        assert_eq!(&text[parsed.z.span()], "\"here\"");
        assert_eq!(position(text, parsed.z.span().start), "line 3, column 5");
    }

    #[test]
    fn a_document_level_error_names_no_empty_key() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Needs {
            auth: u32,
        }
        let mut problems = Vec::new();
        assert!(parse_toml::<Needs>("", "f.toml", &mut problems).is_none());
        assert!(!problems[0].to_string().contains(": :"), "{}", problems[0]);
    }

    #[test]
    fn environment_treats_empty_as_unset() {
        let env = Environment::from_lookup(|k| (k == "AWS_REGION").then(String::new));
        assert_eq!(env.get("AWS_REGION"), None);
    }
}
