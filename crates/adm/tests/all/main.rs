//! rvsadm integration tests (one binary, several modules).

mod binary;
mod cli;
mod conformance;
mod fake;
mod fuzz;
mod golden;
mod json;
mod restore;

use std::cell::RefCell;
use std::rc::Rc;

use rvsadm::names::Names;
use rvsadm::run::{Backend, main_with};

pub use fake::{Fake, Shared};

/// Name databases used by every test.
pub const HOSTS: &str = "127.0.0.1 localhost\n198.18.0.1 lb.example.com lb\n198.18.0.2 rs1.example.com rs1\n10.0.0.1 lb.example.com lb\n10.0.0.2 rs1.example.com rs1\n2001:db8::80 v6lb.example.com\n";
/// Service database used by every test.
pub const SERVICES: &str =
    "http 80/tcp www\nhttp 80/udp\nhttps 443/tcp\ndomain 53/udp\ndomain 53/tcp\n";

pub fn names() -> Names {
    Names::from_strs(HOSTS, SERVICES)
}

pub fn new_fake() -> Rc<RefCell<Fake>> {
    Rc::new(RefCell::new(Fake::new()))
}

/// Run `ipvsadm ARGS` with `stdin` against `fake`: (exit status, stdout, stderr).
pub fn run_with(fake: &Rc<RefCell<Fake>>, args: &[&str], stdin: &str) -> (i32, String, String) {
    let argv: Vec<String> = std::iter::once("ipvsadm")
        .chain(args.iter().copied())
        .map(String::from)
        .collect();
    let f = Rc::clone(fake);
    let mut connect = move || Ok(Box::new(Shared(Rc::clone(&f))) as Box<dyn Backend>);
    let mut input = stdin.as_bytes();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let names = names();
    let code = main_with(
        &argv,
        &mut connect,
        &mut input,
        false,
        &mut out,
        &mut err,
        &names,
    );
    (
        code,
        String::from_utf8(out).expect("utf-8 stdout"),
        String::from_utf8(err).expect("utf-8 stderr"),
    )
}

/// Run against a fresh fake.
pub fn run(args: &[&str]) -> (i32, String, String) {
    run_with(&new_fake(), args, "")
}

/// Split a whitespace-separated command into words.
pub fn words(s: &str) -> Vec<&str> {
    s.split_whitespace().collect()
}
