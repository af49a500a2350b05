//! Reading and writing policy documents as JSON and YAML.
//!
//! Documents come from browsers, files in git and the REST API, so input is
//! bounded before any parser sees it: a size limit, and a nesting limit that
//! a cheap pre-scan enforces (deeply nested input is how recursive parsers
//! are made to overflow their stack, and the browser's stack is small).

use super::Policy;
use serde::de::DeserializeOwned;
use serde_path_to_error::{Path, Segment};

/// The largest document accepted, in bytes. A real policy is a few KiB;
/// a megabyte leaves room for generated ones without inviting abuse.
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// The deepest nesting accepted. The model itself nests about six levels.
pub const MAX_NESTING_DEPTH: usize = 32;

/// The two formats a policy document is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// JSON, as the REST API speaks it.
    Json,
    /// YAML, as people write it in git.
    Yaml,
}

/// Why a document could not be read as a policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The document is larger than [`MAX_DOCUMENT_BYTES`].
    #[error("the document is {size} bytes, over the limit of {limit}")]
    TooLarge {
        /// The document's size in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// The document nests deeper than [`MAX_NESTING_DEPTH`].
    #[error("the document nests {depth} levels deep, over the limit of {limit}")]
    TooDeep {
        /// How deep the pre-scan found it to nest (at least this deep).
        depth: usize,
        /// The limit.
        limit: usize,
    },
    /// The document is not well-formed, or does not fit the model: a
    /// missing or unknown field, a wrong type, a value outside an enum.
    #[error("{}", describe(path, message, *line, *column))]
    Invalid {
        /// Where, as in `retry.model_provider.max_attempts`; empty for the
        /// document as a whole.
        path: String,
        /// What is wrong, without the location.
        message: String,
        /// The 1-based line, when the parser knows it.
        line: Option<usize>,
        /// The 1-based column, when the parser knows it.
        column: Option<usize>,
    },
}

impl ParseError {
    /// The path of the offending field, when the error is about one.
    pub fn path(&self) -> Option<&str> {
        match self {
            Self::Invalid { path, .. } if !path.is_empty() => Some(path),
            _ => None,
        }
    }
}

fn describe(path: &str, message: &str, line: Option<usize>, column: Option<usize>) -> String {
    let mut out = String::new();
    if !path.is_empty() {
        out.push_str(path);
        out.push_str(": ");
    }
    out.push_str(message);
    if let (Some(line), Some(column)) = (line, column) {
        out.push_str(&format!(" (line {line}, column {column})"));
    }
    out
}

/// Why a policy could not be written out. Policies always serialise, so this
/// signals a bug rather than bad input; it is an error, not a panic, because
/// the server must not fall over on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("could not serialise the policy: {0}")]
pub struct EncodeError(pub String);

impl Policy {
    /// Reads a policy from JSON.
    pub fn from_json(text: &str) -> Result<Policy, ParseError> {
        parse(text, Format::Json)
    }

    /// Reads a policy from YAML (one document).
    pub fn from_yaml(text: &str) -> Result<Policy, ParseError> {
        parse(text, Format::Yaml)
    }

    /// Reads a policy in the given format.
    pub fn parse(text: &str, format: Format) -> Result<Policy, ParseError> {
        parse(text, format)
    }

    /// Writes the policy as pretty-printed JSON.
    pub fn to_json(&self) -> Result<String, EncodeError> {
        serde_json::to_string_pretty(self).map_err(|e| EncodeError(e.to_string()))
    }

    /// Writes the policy as YAML.
    pub fn to_yaml(&self) -> Result<String, EncodeError> {
        serde_norway::to_string(self).map_err(|e| EncodeError(e.to_string()))
    }
}

/// Parses any model type with the same bounds and path reporting as a
/// policy; used for the policy itself and handy for tests of one section.
pub(crate) fn parse<T: DeserializeOwned>(text: &str, format: Format) -> Result<T, ParseError> {
    if text.len() > MAX_DOCUMENT_BYTES {
        return Err(ParseError::TooLarge {
            size: text.len(),
            limit: MAX_DOCUMENT_BYTES,
        });
    }
    let depth = match format {
        Format::Json => json_depth(text),
        Format::Yaml => yaml_depth(text),
    };
    if depth > MAX_NESTING_DEPTH {
        return Err(ParseError::TooDeep {
            depth,
            limit: MAX_NESTING_DEPTH,
        });
    }
    match format {
        Format::Json => {
            let mut de = serde_json::Deserializer::from_str(text);
            let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
                let path = dotted(e.path());
                let inner = e.into_inner();
                let (line, column) = (inner.line(), inner.column());
                let mut message = inner.to_string();
                let suffix = format!(" at line {line} column {column}");
                if let Some(stripped) = message.strip_suffix(&suffix) {
                    message = stripped.to_owned();
                }
                invalid(
                    path,
                    message,
                    (line > 0).then_some(line),
                    (line > 0).then_some(column),
                )
            })?;
            // Trailing garbage after the object is an error, not ignored.
            de.end().map_err(|e| {
                invalid(
                    String::new(),
                    "trailing characters after the document".into(),
                    Some(e.line()),
                    Some(e.column()),
                )
            })?;
            Ok(value)
        }
        Format::Yaml => {
            let de = serde_norway::Deserializer::from_str(text);
            serde_path_to_error::deserialize(de).map_err(|e| {
                let path = dotted(e.path());
                let inner = e.into_inner();
                let location = inner.location();
                let mut message = strip_yaml_path(&inner.to_string()).to_owned();
                if let Some(loc) = &location {
                    // The YAML crate appends the location; it is reported
                    // in fields of its own instead.
                    let suffix = format!(" at line {} column {}", loc.line(), loc.column());
                    if let Some(stripped) = message.strip_suffix(&suffix) {
                        message = stripped.to_owned();
                    }
                }
                invalid(
                    path,
                    message,
                    location.as_ref().map(|l| l.line()),
                    location.as_ref().map(|l| l.column()),
                )
            })
        }
    }
}

/// The YAML crate starts some messages with its own rendering of the path
/// (`admission.triggers[0].modes: …`); the path is reported separately.
fn strip_yaml_path(message: &str) -> &str {
    match message.split_once(": ") {
        Some((prefix, rest))
            if !prefix.is_empty()
                && prefix
                    .chars()
                    .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '[' | ']')) =>
        {
            rest
        }
        _ => message,
    }
}

fn invalid(
    path: String,
    message: String,
    line: Option<usize>,
    column: Option<usize>,
) -> ParseError {
    // An unknown field or a duplicate key is usually reported at its parent
    // map (sometimes already at itself); naming it in the path points the
    // author straight at it. (A field named like its parent, `retry.x.x`,
    // is then reported as `retry.x`: close enough to find.)
    let path = match named_key(&message) {
        Some(key) if path.is_empty() => key.to_owned(),
        Some(key) if path == key || path.ends_with(&format!(".{key}")) => path,
        Some(key) => format!("{path}.{key}"),
        None => path,
    };
    ParseError::Invalid {
        path,
        message,
        line,
        column,
    }
}

/// The field or key that an "unknown field" or "duplicate key" message
/// names. Only the start of the message is read, so a quoted value that
/// happens to contain the phrase is not mistaken for one.
fn named_key(message: &str) -> Option<&str> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("duplicate key `"))?;
    rest.split('`').next()
}

/// Renders a deserialisation path with dots and plain indices, as validation
/// findings do: `fallbacks.3.fallback`.
fn dotted(path: &Path) -> String {
    let mut parts: Vec<String> = Vec::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => parts.push(index.to_string()),
            Segment::Map { key } => parts.push(key.clone()),
            Segment::Enum { variant } => parts.push(variant.clone()),
            // A map key that failed to parse, or a syntax error: the path
            // up to the enclosing map is the useful part.
            Segment::Unknown => {}
        }
    }
    parts.join(".")
}

/// The nesting depth of a JSON text: exact, counting brackets outside
/// strings. Malformed input gives some number; the parser then reports it.
fn json_depth(text: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for byte in text.bytes() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// An estimate of a YAML text's nesting depth from its block indentation,
/// sequence dashes and flow brackets. It can count low for odd layouts (a
/// sequence indented level with its key); the YAML parser's own recursion
/// limit is the backstop for those, this scan keeps the common case cheap.
fn yaml_depth(text: &str) -> usize {
    let mut indents: Vec<usize> = Vec::new();
    let mut max = 0usize;
    let mut flow = 0usize;
    // Inside a block scalar (`|` or `>`), more-indented lines are text.
    let mut scalar_parent: Option<usize> = None;
    for line in text.lines() {
        let body = line.trim_start_matches(' ');
        let indent = line.len() - body.len();
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        if let Some(parent) = scalar_parent {
            if indent > parent {
                continue;
            }
            scalar_parent = None;
        }
        if flow == 0 {
            while indents.last().is_some_and(|&top| top >= indent) {
                indents.pop();
            }
            indents.push(indent);
        }
        let mut rest = body;
        let mut dashes = 0usize;
        loop {
            if let Some(after) = rest.strip_prefix("- ") {
                rest = after.trim_start_matches(' ');
                dashes += 1;
            } else if rest == "-" {
                rest = "";
                dashes += 1;
            } else {
                break;
            }
        }
        let base = indents.len() + dashes;
        max = max.max(base + flow);
        let (mut quote, mut escaped) = (None::<char>, false);
        let mut previous = ' ';
        for c in rest.chars() {
            match quote {
                Some('"') => {
                    if escaped {
                        escaped = false;
                    } else if c == '\\' {
                        escaped = true;
                    } else if c == '"' {
                        quote = None;
                    }
                }
                Some(_) => {
                    if c == '\'' {
                        quote = None;
                    }
                }
                None => match c {
                    '#' if previous == ' ' => break,
                    '"' | '\'' => quote = Some(c),
                    '[' | '{' => {
                        flow += 1;
                        max = max.max(base + flow);
                    }
                    ']' | '}' => flow = flow.saturating_sub(1),
                    _ => {}
                },
            }
            previous = c;
        }
        if quote.is_none() && flow == 0 && is_block_scalar_header(rest) {
            scalar_parent = Some(indent);
        }
    }
    max
}

fn is_block_scalar_header(rest: &str) -> bool {
    // `key: |`, `key: >-`, `- |2` and the like.
    let token = rest
        .split('#')
        .next()
        .unwrap_or("")
        .trim_end()
        .rsplit(' ')
        .next()
        .unwrap_or("");
    let indicator = token.chars().next();
    matches!(indicator, Some('|') | Some('>'))
        && token[1..]
            .chars()
            .all(|c| c == '+' || c == '-' || c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_depth_counts_brackets_outside_strings() {
        assert_eq!(json_depth(r#"{"a": [1, {"b": "[[[["}]}"#), 3);
        assert_eq!(json_depth("1"), 0);
    }

    #[test]
    fn yaml_depth_counts_blocks_dashes_and_flow() {
        assert_eq!(yaml_depth("a: 1\nb: 2\n"), 1);
        assert_eq!(yaml_depth("a:\n  b:\n    c: 1\n"), 3);
        assert_eq!(yaml_depth("a: [1, {b: 2}]\n"), 3);
        assert_eq!(yaml_depth("- - - x\n"), 4);
        // Block scalar text is not structure.
        assert_eq!(yaml_depth("a: |\n      deep\n        deeper\nb: 1\n"), 1);
        // Brackets in quotes and comments are not structure.
        assert_eq!(yaml_depth("a: \"[[[\" # {{{\n"), 1);
    }
}
