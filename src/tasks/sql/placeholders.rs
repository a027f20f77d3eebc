//! The query text as written in the config, with `{cursor.<column>}` and `{limit}`, turned into
//! the text the database is sent, with its own bind parameters (`$1`, `?1`, `?`) in their place.
//!
//! Why bind and never splice: a cursor value spliced into SQL text is an injection waiting for a
//! row whose text holds a quote, and it loses the value's type (a timestamp becomes text and is
//! compared as text). Bound, the value keeps its type and the statement can be prepared once.
//!
//! Braces inside string literals, quoted identifiers and comments are left alone, so a query
//! may hold `'{not a placeholder}'`. Where a string ends depends on the database: a backslash
//! escapes the next character in MySQL's strings and in PostgreSQL's `E'...'` strings, and is a
//! plain character in PostgreSQL's standard strings and SQLite's (so `'C:\'` ends at its
//! quote). The rewritten text keeps a map back to the written one, so an error position the
//! database reports points into the query as the user wrote it.

use std::fmt;

/// What a placeholder stands for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Param {
    /// `{cursor.<column>}`: the value of that column in the saved cursor.
    Cursor(String),
    /// `{limit}`: `page-size`.
    Limit,
}

impl fmt::Display for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cursor(column) => write!(f, "{{cursor.{column}}}"),
            Self::Limit => f.write_str("{limit}"),
        }
    }
}

/// How a database writes its bind parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `$1`, `$2`: numbered, so a placeholder used twice is bound once (PostgreSQL).
    Dollar,
    /// `?1`, `?2`: numbered the same way (SQLite).
    QuestionNumbered,
    /// `?` for every use, bound in order of appearance (MySQL, MariaDB).
    Question,
}

/// A query ready to send: its text and the values to bind, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    /// The text with the database's bind parameters.
    pub text: String,
    /// What to bind to each parameter, in order.
    pub binds: Vec<Param>,
    /// `(offset in text, offset in the written query)` at each placeholder's end, for
    /// [`Rewritten::written_offset`].
    shifts: Vec<(usize, usize)>,
}

/// The placeholders of a query as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    text: String,
    /// Each placeholder: byte range in `text` and what it stands for.
    found: Vec<(std::ops::Range<usize>, Param)>,
}

/// A placeholder that is not one of ours: `{}`, `{cursor}`, `{offset}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text} at line {line} is not a placeholder; write {{cursor.<column>}} or {{limit}} (a literal brace belongs in a quoted string)")]
pub struct UnknownPlaceholder {
    /// The braces and what is between them.
    pub text: String,
    /// 1-based line in the query.
    pub line: usize,
}

impl Template {
    /// Finds the placeholders of `text`, outside strings, quoted identifiers and comments, with
    /// the string rules of the database whose bind parameters are `style`.
    pub fn parse(text: &str, style: Style) -> Result<Self, UnknownPlaceholder> {
        let mut found = Vec::new();
        let bytes = text.as_bytes();
        let mut at = 0;
        while at < bytes.len() {
            at = match bytes[at] {
                quote @ (b'\'' | b'"' | b'`') => {
                    let backslash = quote == b'\'' && backslash_escapes(style, bytes, at);
                    skip_quoted(bytes, at, quote, backslash)
                }
                b'-' if bytes.get(at + 1) == Some(&b'-') => skip_until(bytes, at, b"\n"),
                b'/' if bytes.get(at + 1) == Some(&b'*') => skip_until(bytes, at + 2, b"*/"),
                b'{' => {
                    let end = text[at..].find('}').map_or(bytes.len(), |e| at + e + 1);
                    found.push((at..end, param(text, at..end)?));
                    end
                }
                _ => at + 1,
            };
        }
        Ok(Self {
            text: text.to_string(),
            found,
        })
    }

    /// Every placeholder, in order of appearance (with repeats).
    pub fn params(&self) -> impl Iterator<Item = &Param> {
        self.found.iter().map(|(_, param)| param)
    }

    /// The text with `style`'s bind parameters.
    pub fn rewrite(&self, style: Style) -> Rewritten {
        let mut text = String::with_capacity(self.text.len());
        let mut binds: Vec<Param> = Vec::new();
        let mut shifts = Vec::new();
        let mut from = 0;
        for (range, param) in &self.found {
            text.push_str(&self.text[from..range.start]);
            let number = match binds.iter().position(|bound| bound == param) {
                Some(index) if style != Style::Question => index + 1,
                _ => {
                    binds.push(param.clone());
                    binds.len()
                }
            };
            match style {
                Style::Dollar => text.push_str(&format!("${number}")),
                Style::QuestionNumbered => text.push_str(&format!("?{number}")),
                Style::Question => text.push('?'),
            }
            shifts.push((text.len(), range.end));
            from = range.end;
        }
        text.push_str(&self.text[from..]);
        Rewritten {
            text,
            binds,
            shifts,
        }
    }
}

impl Rewritten {
    /// The byte offset in the written query of byte `offset` of the sent text (an offset inside
    /// a bind parameter maps to the end of its placeholder).
    pub fn written_offset(&self, offset: usize) -> usize {
        let before = self.shifts.iter().rev().find(|(sent, _)| *sent <= offset);
        match before {
            Some((sent, written)) => written + (offset - sent),
            None => offset,
        }
    }
}

impl Rewritten {
    /// ` at line L, column C of source.query` for the 1-based character `chars` of the sent
    /// text (as PostgreSQL reports positions), `written` being the query as configured.
    pub fn position(&self, written: &str, chars: usize) -> String {
        let byte = self
            .text
            .char_indices()
            .nth(chars.saturating_sub(1))
            .map_or(self.text.len(), |(at, _)| at);
        let mut at = self.written_offset(byte).min(written.len());
        while !written.is_char_boundary(at) {
            at -= 1;
        }
        let before = &written[..at];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
        format!(" at line {line}, column {column} of source.query")
    }
}

/// What `{...}` at `range` of `text` stands for.
fn param(text: &str, range: std::ops::Range<usize>) -> Result<Param, UnknownPlaceholder> {
    let inner = text[range.clone()]
        .trim_start_matches('{')
        .trim_end_matches('}')
        .trim();
    let column = inner.strip_prefix("cursor.").map(str::trim);
    let closed = text[range.clone()].ends_with('}');
    match (inner, column) {
        _ if !closed => Err(UnknownPlaceholder {
            text: text[range.clone()].to_string(),
            line: text[..range.start].matches('\n').count() + 1,
        }),
        ("limit", _) => Ok(Param::Limit),
        (_, Some(column)) if is_column(column) => Ok(Param::Cursor(column.to_string())),
        _ => Err(UnknownPlaceholder {
            text: text[range.clone()].to_string(),
            line: text[..range.start].matches('\n').count() + 1,
        }),
    }
}

fn is_column(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '$')
}

/// Whether a backslash escapes the next byte in the single-quoted string starting at `at`: in
/// every MySQL string, and in PostgreSQL's only after an `E` prefix (`E'it\'s'`); standard
/// strings (PostgreSQL's `standard_conforming_strings`, SQLite's) take it as a plain character.
fn backslash_escapes(style: Style, bytes: &[u8], at: usize) -> bool {
    match style {
        Style::Question => true,
        Style::QuestionNumbered => false,
        Style::Dollar => {
            let prefix = at.checked_sub(1).map(|before| bytes[before]);
            let word = at.checked_sub(2).map(|before| bytes[before]);
            matches!(prefix, Some(b'E' | b'e'))
                && !word.is_some_and(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'$') || b >= 0x80
                })
        }
    }
}

/// The offset after the quoted run starting at `at`; a doubled quote is an escaped one, and with
/// `backslash` a backslash escapes the next byte.
fn skip_quoted(bytes: &[u8], at: usize, quote: u8, backslash: bool) -> usize {
    let mut index = at + 1;
    while index < bytes.len() {
        match bytes[index] {
            b'\\' if backslash => index += 2,
            byte if byte == quote => {
                if bytes.get(index + 1) == Some(&quote) {
                    index += 2;
                } else {
                    return index + 1;
                }
            }
            _ => index += 1,
        }
    }
    bytes.len()
}

/// The offset after the first `end` at or after `at` (or the end of the text).
fn skip_until(bytes: &[u8], at: usize, end: &[u8]) -> usize {
    bytes[at..]
        .windows(end.len())
        .position(|window| window == end)
        .map_or(bytes.len(), |found| at + found + end.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYSET: &str =
        "SELECT * FROM t WHERE (updated_at, id) > ({cursor.updated_at}, {cursor.id}) \
                          ORDER BY updated_at, id LIMIT {limit}";

    fn cursor(column: &str) -> Param {
        Param::Cursor(column.into())
    }

    #[test]
    fn dollar_and_numbered_styles_bind_a_repeated_placeholder_once() {
        let template = Template::parse(
            "SELECT 1 WHERE a > {cursor.a} OR (a = {cursor.a} AND b > {cursor.b}) LIMIT {limit}",
            Style::Dollar,
        )
        .unwrap();
        let dollar = template.rewrite(Style::Dollar);
        assert_eq!(
            dollar.text,
            "SELECT 1 WHERE a > $1 OR (a = $1 AND b > $2) LIMIT $3"
        );
        assert_eq!(dollar.binds, [cursor("a"), cursor("b"), Param::Limit]);
        let numbered = template.rewrite(Style::QuestionNumbered);
        assert_eq!(
            numbered.text,
            "SELECT 1 WHERE a > ?1 OR (a = ?1 AND b > ?2) LIMIT ?3"
        );
    }

    #[test]
    fn question_style_binds_each_use() {
        let rewritten = Template::parse(KEYSET, Style::Question)
            .unwrap()
            .rewrite(Style::Question);
        assert!(rewritten
            .text
            .ends_with("> (?, ?) ORDER BY updated_at, id LIMIT ?"));
        assert_eq!(
            rewritten.binds,
            [cursor("updated_at"), cursor("id"), Param::Limit]
        );
    }

    #[test]
    fn braces_in_strings_identifiers_and_comments_are_text() {
        let text =
            "SELECT '{x}', 'it''s {y}', \"{z}\", `{w}` -- {c}\n/* {d} */ FROM t LIMIT {limit}";
        let template = Template::parse(text, Style::Dollar).unwrap();
        assert_eq!(template.params().collect::<Vec<_>>(), [&Param::Limit]);
        let rewritten = template.rewrite(Style::Dollar);
        assert!(rewritten.text.starts_with("SELECT '{x}', 'it''s {y}'"));
        assert!(rewritten.text.ends_with("FROM t LIMIT $1"));
    }

    #[test]
    fn an_unknown_placeholder_is_refused_with_its_line() {
        let error = Template::parse("SELECT 1\nWHERE a > {cursor}", Style::Dollar).unwrap_err();
        assert_eq!(error.text, "{cursor}");
        assert_eq!(error.line, 2);
        assert!(Template::parse("SELECT {offset}", Style::Dollar).is_err());
        assert!(Template::parse("SELECT {cursor.a b}", Style::Dollar).is_err());
        assert!(Template::parse("SELECT {cursor.a", Style::Dollar).is_err());
    }

    #[test]
    fn offsets_in_the_sent_text_map_back_to_the_written_query() {
        let written = "SELECT {cursor.updated_at}, FROMM t";
        let rewritten = Template::parse(written, Style::Dollar)
            .unwrap()
            .rewrite(Style::Dollar);
        assert_eq!(rewritten.text, "SELECT $1, FROMM t");
        let sent = rewritten.text.find("FROMM").unwrap();
        assert_eq!(
            rewritten.written_offset(sent),
            written.find("FROMM").unwrap()
        );
        assert_eq!(rewritten.written_offset(3), 3);
    }

    #[test]
    fn a_backslash_is_plain_in_standard_strings() {
        let text = r"SELECT * FROM f WHERE p = 'C:\' AND id > {cursor.id} LIMIT {limit}";
        for style in [Style::Dollar, Style::QuestionNumbered] {
            let template = Template::parse(text, style).unwrap();
            assert_eq!(
                template.params().collect::<Vec<_>>(),
                [&cursor("id"), &Param::Limit],
                "{style:?}"
            );
        }
        let sqlite = Template::parse(text, Style::QuestionNumbered).unwrap();
        assert_eq!(
            sqlite.rewrite(Style::QuestionNumbered).text,
            r"SELECT * FROM f WHERE p = 'C:\' AND id > ?1 LIMIT ?2"
        );
    }

    #[test]
    fn a_backslash_escapes_in_mysql_strings_and_postgres_escape_strings() {
        let mysql = Template::parse(
            r"SELECT 'it\'s {x}', 'C:\\' FROM t WHERE id > {cursor.id} LIMIT {limit}",
            Style::Question,
        )
        .unwrap();
        assert_eq!(
            mysql.params().collect::<Vec<_>>(),
            [&cursor("id"), &Param::Limit]
        );
        assert!(mysql
            .rewrite(Style::Question)
            .text
            .starts_with(r"SELECT 'it\'s {x}', 'C:\\' FROM t"));
        let postgres = Template::parse(
            r"SELECT E'it\'s {x}', e'\\', name'\' FROM t WHERE id > {cursor.id} LIMIT {limit}",
            Style::Dollar,
        )
        .unwrap();
        assert_eq!(
            postgres.params().collect::<Vec<_>>(),
            [&cursor("id"), &Param::Limit]
        );
    }
}
