//! Compiles the AF_XDP steering program (`bpf/steer.c`) with clang into `OUT_DIR`, where
//! `src/xdp.rs` embeds it with `include_bytes!`: twice, as `steer.o` (`-O2 -mcpu=v3`) and
//! `steer-alt.o` (`-O1 -mcpu=v2`, a different instruction layout). Some x86 kernels' JIT
//! fails on particular layouts after the verifier accepted the program (`ENOTSUPP`,
//! "bpf_jit: fatal error" in the kernel log); the loader then tries the other build.
//!
//! The XDP packet generator (`bpf/gen.c`, embedded by `src/xdp/gen.rs`) is built the same
//! way, as `gen.o` and `gen-alt.o`.
//!
//! clang is optional: without it the build still succeeds, an empty object is embedded,
//! and `rvs_io::xdp` reports "AF_XDP unavailable: built without clang" at run time. A clang
//! that is present but fails on the program fails the build (that is a bug to see, not to
//! hide). `RVS_BPF_CLANG` names the compiler to use (default `clang`); `RVS_BPF_CLANG=none`
//! builds without the program on purpose.

use std::env;
use std::fs;
use std::path::PathBuf;
use std::process::Command;

/// The builds: source, output file and the flags that differ.
const BUILDS: [(&str, &str, &[&str]); 4] = [
    ("bpf/steer.c", "steer.o", &["-O2", "-mcpu=v3"]),
    ("bpf/steer.c", "steer-alt.o", &["-O1", "-mcpu=v2"]),
    ("bpf/gen.c", "gen.o", &["-O2", "-mcpu=v3"]),
    ("bpf/gen.c", "gen-alt.o", &["-O1", "-mcpu=v2"]),
];

fn main() {
    println!("cargo:rerun-if-changed=bpf/steer.c");
    println!("cargo:rerun-if-changed=bpf/fast.h");
    println!("cargo:rerun-if-changed=bpf/gen.c");
    println!("cargo:rerun-if-changed=bpf/rvs_bpf.h");
    println!("cargo:rerun-if-env-changed=RVS_BPF_CLANG");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let clang = env::var("RVS_BPF_CLANG").unwrap_or_else(|_| "clang".to_owned());

    let missing = |why: &str| {
        println!(
            "cargo:warning=rvs-io: AF_XDP steering program not built ({why}); \
             `apt-get install clang` to enable AF_XDP"
        );
        for (_, name, _) in BUILDS {
            fs::write(out_dir.join(name), b"").expect("writing an empty BPF object");
        }
    };
    if clang == "none" {
        missing("RVS_BPF_CLANG=none");
        return;
    }
    for (src, name, flags) in BUILDS {
        let result = Command::new(&clang)
            .args(["-target", "bpf", "-g", "-Wall", "-Werror"])
            .args(flags)
            .args(["-c", src, "-o"])
            .arg(out_dir.join(name))
            .output();
        match result {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                missing(&format!("{clang} not found"));
                return;
            }
            Err(e) => panic!("running {clang}: {e}"),
            Ok(o) if !o.status.success() => panic!(
                "{clang} failed to compile {src} ({}):\n{}",
                o.status,
                String::from_utf8_lossy(&o.stderr)
            ),
            Ok(_) => {}
        }
    }
}
