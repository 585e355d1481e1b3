//! `rvsadm`: ipvsadm-compatible command line for rvsd.
#![forbid(unsafe_code)]

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use rvs_api::Client;
use rvsadm::names::Names;
use rvsadm::run::{Backend, main_with};

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let names = Names::system();
    let mut connect = || Client::connect_default().map(|c| Box::new(c) as Box<dyn Backend>);
    let stdin = io::stdin();
    let interactive = stdin.is_terminal();
    let mut input = stdin.lock();
    let mut out = io::BufWriter::new(io::stdout().lock());
    let mut err = io::stderr().lock();
    let code = main_with(
        &argv,
        &mut connect,
        &mut input,
        interactive,
        &mut out,
        &mut err,
        &names,
    );
    let _ = out.flush();
    ExitCode::from(u8::try_from(code & 0xff).unwrap_or(u8::MAX))
}
