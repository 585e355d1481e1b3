//! Lines to tokens, `include` expansion, and the generic block tree.
//!
//! keepalived's syntax is line based: a statement is a keyword followed by its
//! arguments on the same line, optionally followed by a `{ ... }` block whose
//! opening brace may sit on the same line or the next one. `#` and `!` start a
//! comment anywhere outside double quotes. Braces are tokens of their own, so
//! `url { path /x }` on one line is the same as the spread-out form.
//!
//! Every limit here (file size, number of files, include depth, nesting depth,
//! token count) turns hostile input into an error instead of memory or stack
//! exhaustion.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{ConfigError, ErrorKind, Notice, NoticeKind, Pos};

/// Largest configuration file read, in bytes.
pub const MAX_FILE_BYTES: u64 = 4 << 20;
/// Most files one configuration may pull in through `include`.
pub const MAX_FILES: usize = 256;
/// Deepest chain of nested `include`s.
pub const MAX_INCLUDE_DEPTH: usize = 8;
/// Deepest block nesting (`{` inside `{`).
pub const MAX_NESTING: usize = 16;
/// Most tokens over all files.
pub const MAX_TOKENS: usize = 1 << 21;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Tok {
    Word(String),
    Open,
    Close,
}

#[derive(Clone, Debug)]
pub(crate) struct Token {
    tok: Tok,
    pos: Pos,
}

/// One statement: keyword, arguments on its line, optional block.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub(crate) kw: String,
    pub(crate) args: Vec<String>,
    pub(crate) pos: Pos,
    pub(crate) block: Option<Vec<Self>>,
}

/// Reads the top file (from disk, or from `text` when given) and every include.
pub(crate) struct Lexer<'n> {
    tokens: Vec<Token>,
    files: usize,
    stack: Vec<PathBuf>,
    notices: &'n mut Vec<Notice>,
}

impl<'n> Lexer<'n> {
    pub(crate) fn new(notices: &'n mut Vec<Notice>) -> Self {
        Self {
            tokens: Vec::new(),
            files: 0,
            stack: Vec::new(),
            notices,
        }
    }

    /// Lex `path` (reading it unless `text` is given) and its includes.
    pub(crate) fn run(mut self, path: &Path, text: Option<&str>) -> Result<Vec<Node>, ConfigError> {
        match text {
            Some(t) => self.lex_text(path, t, 0)?,
            None => self.lex_path(path, 0, None)?,
        }
        build(&self.tokens)
    }

    fn lex_path(
        &mut self,
        path: &Path,
        depth: usize,
        from: Option<&Pos>,
    ) -> Result<(), ConfigError> {
        let io_err = |e: std::io::Error| ConfigError {
            pos: from.cloned(),
            keyword: "include".to_owned(),
            kind: ErrorKind::Io {
                path: path.to_path_buf(),
                source: e,
            },
        };
        let meta = std::fs::metadata(path).map_err(io_err)?;
        if !meta.is_file() {
            return Err(io_err(std::io::Error::other("not a regular file")));
        }
        if meta.len() > MAX_FILE_BYTES {
            return Err(io_err(std::io::Error::other(format!(
                "larger than {MAX_FILE_BYTES} bytes"
            ))));
        }
        let bytes = std::fs::read(path).map_err(io_err)?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(io_err(std::io::Error::other(format!(
                "larger than {MAX_FILE_BYTES} bytes"
            ))));
        }
        let text = match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                let bytes = e.as_bytes();
                let bad = e.utf8_error().valid_up_to();
                let line = bytes[..bad].iter().filter(|&&b| b == b'\n').count() + 1;
                let start = bytes[..bad]
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |i| i + 1);
                let end = bytes[start..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(bytes.len(), |i| start + i);
                let text = String::from_utf8_lossy(&bytes[start..end]);
                return Err(syntax(
                    &Pos::new(path, line),
                    &text,
                    "line is not valid UTF-8",
                ));
            }
        };
        self.lex_text(path, &text, depth)
    }

    fn lex_text(&mut self, path: &Path, text: &str, depth: usize) -> Result<(), ConfigError> {
        self.files += 1;
        let canon = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        self.stack.push(canon);
        let file: Arc<Path> = Arc::from(path);
        for (i, raw) in text.split('\n').enumerate() {
            let pos = Pos {
                file: file.clone(),
                line: u32::try_from(i + 1).unwrap_or(u32::MAX),
            };
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            let toks = split_line(line, &pos)?;
            if let Some(Tok::Word(w)) = toks.first()
                && w == "include"
                && !line.trim_start().starts_with('"')
            {
                self.include(&toks[1..], &pos, path, depth)?;
                continue;
            }
            if self.tokens.len() + toks.len() > MAX_TOKENS {
                return Err(ConfigError::at(
                    &pos,
                    "",
                    ErrorKind::Syntax(format!("configuration has more than {MAX_TOKENS} tokens")),
                ));
            }
            self.tokens.extend(toks.into_iter().map(|tok| Token {
                tok,
                pos: pos.clone(),
            }));
        }
        self.stack.pop();
        Ok(())
    }

    fn include(
        &mut self,
        args: &[Tok],
        pos: &Pos,
        path: &Path,
        depth: usize,
    ) -> Result<(), ConfigError> {
        let err = |m: String| ConfigError::at(pos, "include", ErrorKind::Include(m));
        let pattern = match args {
            [Tok::Word(p)] => p,
            [] => return Err(err("expected a file name or glob pattern".to_owned())),
            _ => {
                return Err(err(
                    "expected exactly one file name or glob pattern".to_owned()
                ));
            }
        };
        if depth + 1 > MAX_INCLUDE_DEPTH {
            return Err(err(format!(
                "includes nested deeper than {MAX_INCLUDE_DEPTH}"
            )));
        }
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        let full = if Path::new(pattern).is_absolute() {
            PathBuf::from(pattern)
        } else {
            base.join(pattern)
        };
        let files = if has_glob(pattern) {
            let found = expand_glob(&full).map_err(|e| err(format!("{pattern}: {e}")))?;
            if found.is_empty() {
                self.notices.push(Notice {
                    pos: pos.clone(),
                    keyword: "include".to_owned(),
                    kind: NoticeKind::Ignored(format!("pattern {pattern} matched no file")),
                });
            }
            found
        } else {
            vec![full]
        };
        for f in files {
            if self.files >= MAX_FILES {
                return Err(err(format!("more than {MAX_FILES} configuration files")));
            }
            let canon = std::fs::canonicalize(&f).unwrap_or_else(|_| f.clone());
            if self.stack.contains(&canon) {
                return Err(err(format!("{} includes itself", f.display())));
            }
            self.lex_path(&f, depth + 1, Some(pos))?;
        }
        Ok(())
    }
}

/// A lexical error, named after the line's first word when there is one.
fn syntax(pos: &Pos, line: &str, msg: impl Into<String>) -> ConfigError {
    let kw = line
        .split(|c: char| c.is_whitespace() || c == '{' || c == '}' || c == '"')
        .find(|w| !w.is_empty())
        .unwrap_or("");
    ConfigError::at(pos, kw, ErrorKind::Syntax(msg.into()))
}

/// Split one line into words and braces, dropping the comment.
fn split_line(line: &str, pos: &Pos) -> Result<Vec<Tok>, ConfigError> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                in_word = true;
                let mut closed = false;
                for q in chars.by_ref() {
                    if q == '"' {
                        closed = true;
                        break;
                    }
                    if q.is_control() && q != '\t' {
                        return Err(syntax(pos, line, "control character in quoted string"));
                    }
                    word.push(q);
                }
                if !closed {
                    return Err(syntax(pos, line, "unterminated quoted string"));
                }
            }
            '#' | '!' => break,
            '{' | '}' => {
                if in_word {
                    out.push(Tok::Word(std::mem::take(&mut word)));
                    in_word = false;
                }
                out.push(if c == '{' { Tok::Open } else { Tok::Close });
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(Tok::Word(std::mem::take(&mut word)));
                    in_word = false;
                }
            }
            c if c.is_control() => {
                return Err(syntax(pos, line, format!("control character {c:?}")));
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        out.push(Tok::Word(word));
    }
    if let Some(Tok::Word(w)) = out.first() {
        if w.starts_with('@') {
            return Err(ConfigError::at(
                pos,
                w,
                ErrorKind::Unsupported("conditional configuration lines (@name)".to_owned()),
            ));
        }
        if w.starts_with('$') {
            return Err(ConfigError::at(
                pos,
                w,
                ErrorKind::Unsupported("parameter definitions ($NAME=)".to_owned()),
            ));
        }
        if w.starts_with("~SEQ") {
            return Err(ConfigError::at(
                pos,
                w,
                ErrorKind::Unsupported("sequence expansion (~SEQ)".to_owned()),
            ));
        }
    }
    Ok(out)
}

fn same_line(a: &Pos, b: &Pos) -> bool {
    a.line == b.line && Arc::ptr_eq(&a.file, &b.file)
}

fn build(tokens: &[Token]) -> Result<Vec<Node>, ConfigError> {
    let mut i = 0;
    seq(tokens, &mut i, 0, None)
}

fn seq(
    toks: &[Token],
    i: &mut usize,
    depth: usize,
    opener: Option<(&str, &Pos)>,
) -> Result<Vec<Node>, ConfigError> {
    let mut out = Vec::new();
    while let Some(t) = toks.get(*i) {
        match &t.tok {
            Tok::Close => {
                *i += 1;
                if opener.is_none() {
                    return Err(ConfigError::at(
                        &t.pos,
                        "}",
                        ErrorKind::Syntax("'}' without a matching '{'".to_owned()),
                    ));
                }
                return Ok(out);
            }
            Tok::Open => {
                return Err(ConfigError::at(
                    &t.pos,
                    "{",
                    ErrorKind::Syntax("'{' without a keyword before it".to_owned()),
                ));
            }
            Tok::Word(w) => {
                let pos = t.pos.clone();
                *i += 1;
                let mut args = Vec::new();
                while let Some(Token {
                    tok: Tok::Word(a),
                    pos: p,
                }) = toks.get(*i)
                    && same_line(p, &pos)
                {
                    args.push(a.clone());
                    *i += 1;
                }
                let block = if let Some(Token {
                    tok: Tok::Open,
                    pos: p,
                }) = toks.get(*i)
                {
                    if depth + 1 > MAX_NESTING {
                        return Err(ConfigError::at(
                            p,
                            w,
                            ErrorKind::Syntax(format!("blocks nested deeper than {MAX_NESTING}")),
                        ));
                    }
                    *i += 1;
                    Some(seq(toks, i, depth + 1, Some((w, &pos)))?)
                } else {
                    None
                };
                out.push(Node {
                    kw: w.clone(),
                    args,
                    pos,
                    block,
                });
            }
        }
    }
    if let Some((kw, pos)) = opener {
        return Err(ConfigError::at(
            pos,
            kw,
            ErrorKind::Syntax("block is not closed (missing '}')".to_owned()),
        ));
    }
    Ok(out)
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Expand a glob whose wildcards may sit in any path component; sorted, bounded.
fn expand_glob(pattern: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut current: Vec<PathBuf> = vec![PathBuf::new()];
    let comps: Vec<_> = pattern.components().collect();
    for (n, comp) in comps.iter().enumerate() {
        let last = n + 1 == comps.len();
        let s = comp.as_os_str().to_string_lossy();
        let mut next = BTreeSet::new();
        for base in &current {
            if has_glob(&s) {
                let dir = if base.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    base.as_path()
                };
                let Ok(rd) = std::fs::read_dir(dir) else {
                    continue;
                };
                for entry in rd.take(100_000) {
                    let entry = entry?;
                    let name = entry.file_name();
                    let name = name.to_string_lossy();
                    if name.starts_with('.') && !s.starts_with('.') {
                        continue;
                    }
                    if glob_match(s.as_bytes(), name.as_bytes()) {
                        let p = base.join(&*name);
                        let keep = if last { p.is_file() } else { p.is_dir() };
                        if keep {
                            next.insert(p);
                        }
                    }
                }
            } else {
                let p = base.join(comp.as_os_str());
                if last || p.is_dir() {
                    next.insert(p);
                }
            }
            if next.len() > MAX_FILES {
                return Err(std::io::Error::other(format!(
                    "matches more than {MAX_FILES} files"
                )));
            }
        }
        current = next.into_iter().collect();
    }
    Ok(current.into_iter().filter(|p| p.is_file()).collect())
}

/// Shell-style match of one path component: `*`, `?`, `[abc]`, `[a-z]`, `[!x]`.
fn glob_match(pat: &[u8], name: &[u8]) -> bool {
    // Iterative matcher with single-star backtracking: linear in practice, no recursion.
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pat.len() {
            match pat[p] {
                b'*' => {
                    star = Some((p, n));
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    n += 1;
                    continue;
                }
                b'[' => {
                    if let Some((ok, len)) = class_match(&pat[p..], name[n])
                        && ok
                    {
                        p += len;
                        n += 1;
                        continue;
                    }
                }
                c if c == name[n] => {
                    p += 1;
                    n += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, sn)) => {
                p = sp + 1;
                n = sn + 1;
                star = Some((sp, sn + 1));
            }
            None => return false,
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

/// Match a `[...]` class at the start of `pat`; returns (matched, class length).
fn class_match(pat: &[u8], c: u8) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(pat.get(1), Some(b'!' | b'^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < pat.len() {
        if pat[i] == b']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if i + 2 < pat.len() && pat[i + 1] == b'-' && pat[i + 2] != b']' {
            if (pat[i]..=pat[i + 2]).contains(&c) {
                matched = true;
            }
            i += 3;
        } else {
            if pat[i] == c {
                matched = true;
            }
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<Tok> {
        split_line(line, &Pos::new(Path::new("t"), 1)).expect("line lexes")
    }

    #[test]
    fn comments_and_quotes() {
        assert_eq!(
            words(r#"misc_path "/bin/x a#b" # comment"#),
            vec![
                Tok::Word("misc_path".into()),
                Tok::Word("/bin/x a#b".into())
            ]
        );
        assert_eq!(
            words("weight 3 ! note"),
            vec![Tok::Word("weight".into()), Tok::Word("3".into())]
        );
        assert_eq!(
            words("url { path /x }"),
            vec![
                Tok::Word("url".into()),
                Tok::Open,
                Tok::Word("path".into()),
                Tok::Word("/x".into()),
                Tok::Close
            ]
        );
    }

    #[test]
    fn globs() {
        assert!(glob_match(b"*.conf", b"a.conf"));
        assert!(!glob_match(b"*.conf", b"a.conf~"));
        assert!(glob_match(b"vs-?[0-9].conf", b"vs-a7.conf"));
        assert!(!glob_match(b"vs-[!a]*", b"vs-abc"));
        assert!(glob_match(b"a*b*c", b"aXXbYYc"));
        assert!(!glob_match(b"[", b"["));
    }
}
