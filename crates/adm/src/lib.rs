//! rvsadm: an ipvsadm 1.31 compatible administration tool for rvsd.
//!
//! The crate is split so that everything but the socket is testable without a
//! daemon:
//!
//! * [`cli`]: the command line ([`cli::parse`] → [`cli::Command`] or
//!   [`cli::CliError`] with ipvsadm's message and exit status);
//! * [`format`](mod@format): byte-exact listings, `-S`, connections, timeouts, daemons;
//! * [`json`]: the `--json` extension (schema in docs/json-schema.md);
//! * [`restore`]: `-R` tokenisation;
//! * [`names`]: `/etc/hosts` and `/etc/services` lookups (never DNS) and the C
//!   parsing helpers whose quirks ipvsadm exposes;
//! * [`run`]: executing a command against a [`run::Backend`] (rvsd's
//!   [`rvs_api::Client`] in the binary, a double in tests).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cli;
pub mod drain;
pub mod format;
pub mod help;
pub mod json;
pub mod names;
mod popt;
pub mod restore;
pub mod run;
