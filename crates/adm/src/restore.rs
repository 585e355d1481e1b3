//! `-R` input tokenisation, reproducing ipvsadm's `config_stream_read`.
//!
//! * Tokens are separated by space, tab or CR; a newline ends the command.
//! * There is no quoting, escaping or comment syntax: `# note` is two tokens.
//! * A token exactly equal to `ipvsadm` is dropped, so lines may start with it.
//! * A line with no tokens is skipped.
//! * A final line without a newline is still returned, unless white space
//!   separates its last token from the end of input: then (as in ipvsadm, whose
//!   white-space skipping loop hits EOF) the line is dropped and input ends.

use std::io::{self, BufRead};

/// Reads restore input one command line at a time.
pub struct LineReader<R> {
    r: R,
    pushback: Option<u8>,
}

const fn is_sep(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

impl<R: BufRead> LineReader<R> {
    /// Wrap a reader.
    pub const fn new(r: R) -> Self {
        Self { r, pushback: None }
    }

    fn getc(&mut self) -> io::Result<Option<u8>> {
        if let Some(b) = self.pushback.take() {
            return Ok(Some(b));
        }
        loop {
            let buf = match self.r.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let Some(&b) = buf.first() else {
                return Ok(None);
            };
            self.r.consume(1);
            return Ok(Some(b));
        }
    }

    /// The next command as an argv vector starting with `program`.
    ///
    /// `Ok(None)` ends the input. A returned vector of length 1 is an empty line
    /// (ipvsadm skips it).
    ///
    /// # Errors
    /// Read errors from the underlying reader.
    pub fn next_line(&mut self, program: &str) -> io::Result<Option<Vec<String>>> {
        let mut argv = vec![program.to_owned()];
        let mut ntoken = 0usize;
        loop {
            let Some(c) = self.getc()? else {
                return Ok((ntoken > 0).then_some(argv));
            };
            if is_sep(c) {
                self.pushback = Some(c);
                loop {
                    match self.getc()? {
                        None => return Ok(None),
                        Some(b'\n') => return Ok(Some(argv)),
                        Some(b' ' | b'\t' | b'\r') => {}
                        Some(other) => {
                            self.pushback = Some(other);
                            break;
                        }
                    }
                }
                continue;
            }
            let mut token = vec![c];
            let mut tail = None;
            while let Some(b) = self.getc()? {
                if is_sep(b) {
                    tail = Some(b);
                    break;
                }
                token.push(b);
            }
            let token = String::from_utf8_lossy(&token).into_owned();
            if token != "ipvsadm" {
                ntoken += 1;
                argv.push(token);
            }
            if tail == Some(b'\n') {
                return Ok(Some(argv));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &str) -> Vec<Vec<String>> {
        let mut r = LineReader::new(input.as_bytes());
        let mut out = Vec::new();
        while let Some(l) = r.next_line("prog").unwrap() {
            out.push(l[1..].to_vec());
        }
        out
    }

    #[test]
    fn tokenisation() {
        assert_eq!(
            lines("-A -t 1.2.3.4:80\t-s rr\r\n\n  \nipvsadm -C\n-L -n"),
            vec![
                vec!["-A", "-t", "1.2.3.4:80", "-s", "rr"],
                vec![],
                vec![],
                vec!["-C"],
                vec!["-L", "-n"],
            ]
        );
    }

    #[test]
    fn comments_are_tokens() {
        assert_eq!(lines("# note\n"), vec![vec!["#", "note"]]);
    }

    #[test]
    fn ipvsadm_only_line_is_empty() {
        assert_eq!(lines("ipvsadm\n-C\n"), vec![vec![], vec!["-C"]]);
        assert_eq!(lines("ipvsadm"), Vec::<Vec<String>>::new());
    }

    #[test]
    fn trailing_whitespace_at_eof_drops_line() {
        assert_eq!(lines("-C \n-Z  "), vec![vec!["-C"]]);
        assert_eq!(lines("-Z "), vec![vec!["-Z"]]);
        assert_eq!(lines(""), Vec::<Vec<String>>::new());
    }
}
