//! A small re-implementation of the parts of popt that ipvsadm's grammar depends on.
//!
//! * short options may be bundled (`-Ln`, `-At`); a short option taking a value
//!   uses the rest of its word (`-t10.0.0.1:80`, `-t=...`) or the next word;
//! * long options take their value as `--name=value` or from the next word;
//! * an optional value (`-p`) is taken from the next word only if that word does
//!   not start with `-`;
//! * words that are not options are collected as arguments wherever they appear;
//!   `--` makes every following word an argument;
//! * there is no abbreviation of long options;
//! * the "bad option" reported in errors is the last argv word consumed, exactly
//!   as `poptBadOption` reports it (so an error about `--start-daemon master`
//!   names `master`).

/// How an option takes its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ArgKind {
    /// No value.
    None,
    /// A mandatory value.
    Required,
    /// An optional value.
    Optional,
}

/// One entry of the option table.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OptDef<T> {
    pub(crate) long: &'static str,
    pub(crate) short: Option<char>,
    pub(crate) kind: ArgKind,
    pub(crate) id: T,
}

/// A popt error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PoptError {
    /// `POPT_ERROR_BADOPT`.
    BadOpt,
    /// `POPT_ERROR_NOARG`.
    NoArg,
    /// `POPT_ERROR_UNWANTEDARG`.
    UnwantedArg,
}

impl PoptError {
    /// `poptStrerror` text.
    pub(crate) const fn text(self) -> &'static str {
        match self {
            Self::BadOpt => "unknown option",
            Self::NoArg => "missing argument",
            Self::UnwantedArg => "option does not take an argument",
        }
    }
}

/// What the next call produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Event<T> {
    /// An option, its value, and the index of the last argv word consumed.
    Opt {
        id: T,
        arg: Option<String>,
        word: usize,
    },
    /// A parse error and the index of the last argv word consumed.
    Error { err: PoptError, word: usize },
    /// No more options.
    End,
}

/// Option iterator over `args` (`args[0]` is the program name and is skipped).
pub(crate) struct Popt<'a, T: Copy + 'static> {
    table: &'static [OptDef<T>],
    args: &'a [String],
    next: usize,
    /// Word index and byte offset of the remaining bundled short options.
    bundle: Option<(usize, usize)>,
    rest_are_args: bool,
    leftovers: Vec<String>,
}

impl<'a, T: Copy + 'static> Popt<'a, T> {
    pub(crate) fn new(table: &'static [OptDef<T>], args: &'a [String]) -> Self {
        Self {
            table,
            args,
            next: 1,
            bundle: None,
            rest_are_args: false,
            leftovers: Vec::new(),
        }
    }

    /// The argv word at `i` (empty if out of range).
    pub(crate) fn word(&self, i: usize) -> &'a str {
        self.args.get(i).map_or("", String::as_str)
    }

    /// Non-option arguments collected so far (all of them once `End` was returned).
    pub(crate) fn take_leftovers(&mut self) -> Vec<String> {
        std::mem::take(&mut self.leftovers)
    }

    fn last_word(&self) -> usize {
        self.next.saturating_sub(1)
    }

    /// Value for an option whose own word is used up.
    fn value_from_next(&mut self, kind: ArgKind) -> Result<Option<String>, PoptError> {
        match self.args.get(self.next) {
            None => match kind {
                ArgKind::Optional => Ok(None),
                _ => Err(PoptError::NoArg),
            },
            Some(w) => {
                if kind == ArgKind::Optional && w.starts_with('-') {
                    Ok(None)
                } else {
                    self.next += 1;
                    Ok(Some(w.clone()))
                }
            }
        }
    }

    fn finish(&mut self, def: &OptDef<T>, inline: Option<String>) -> Event<T> {
        let arg = match def.kind {
            ArgKind::None => {
                if inline.is_some() {
                    return Event::Error {
                        err: PoptError::UnwantedArg,
                        word: self.last_word(),
                    };
                }
                None
            }
            kind => match inline {
                Some(v) => Some(v),
                None => match self.value_from_next(kind) {
                    Ok(v) => v,
                    Err(err) => {
                        return Event::Error {
                            err,
                            word: self.last_word(),
                        };
                    }
                },
            },
        };
        Event::Opt {
            id: def.id,
            arg,
            word: self.last_word(),
        }
    }

    /// Produce the next option or error.
    pub(crate) fn next_event(&mut self) -> Event<T> {
        loop {
            if let Some((w, pos)) = self.bundle.take() {
                let word = self.word(w);
                let Some(c) = word[pos..].chars().next() else {
                    continue;
                };
                let after = pos + c.len_utf8();
                let Some(def) = self.table.iter().find(|d| d.short == Some(c)) else {
                    return Event::Error {
                        err: PoptError::BadOpt,
                        word: self.last_word(),
                    };
                };
                let mut rest = &word[after..];
                let mut rest_pos = after;
                if let Some(r) = rest.strip_prefix('=') {
                    rest = r;
                    rest_pos += 1;
                }
                if def.kind == ArgKind::None {
                    if !rest.is_empty() {
                        self.bundle = Some((w, rest_pos));
                    }
                    return self.finish(def, None);
                }
                let inline = (!rest.is_empty() || after < word.len()).then(|| rest.to_owned());
                return self.finish(def, inline);
            }
            let Some(word) = self.args.get(self.next) else {
                return Event::End;
            };
            self.next += 1;
            if self.rest_are_args {
                self.leftovers.push(word.clone());
                continue;
            }
            if word == "--" {
                self.rest_are_args = true;
                continue;
            }
            if !word.starts_with('-') || word == "-" {
                self.leftovers.push(word.clone());
                continue;
            }
            if let Some(long) = word.strip_prefix("--") {
                let (name, inline) = match long.split_once('=') {
                    Some((n, v)) => (n, Some(v.to_owned())),
                    None => (long, None),
                };
                let Some(def) = self.table.iter().find(|d| d.long == name) else {
                    return Event::Error {
                        err: PoptError::BadOpt,
                        word: self.last_word(),
                    };
                };
                return self.finish(def, inline);
            }
            self.bundle = Some((self.next - 1, 1));
        }
    }
}
