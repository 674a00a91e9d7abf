//! Reads the plugin API from Debian's headers (`mosquitto-dev`, `libmosquitto-dev`): a small C
//! program, compiled against `mosquitto_broker.h` and run here, prints the constants and the
//! event structs' offsets and sizes as Rust. `src/ffi.rs` declares the structs by hand and
//! checks each offset against these at compile time, so a header that differs fails the build
//! instead of the broker.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo::rerun-if-changed=src/layout.c");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    let exe = out.join("layout");
    let compiler = cc::Build::new().cargo_metadata(false).get_compiler();
    let status = compiler.to_command().arg("src/layout.c").arg("-o").arg(&exe).status();
    match status {
        Ok(s) if s.success() => {}
        _ => fail("could not compile src/layout.c against mosquitto_broker.h"),
    }
    let printed = match Command::new(&exe).output() {
        Ok(o) if o.status.success() => o.stdout,
        _ => fail("src/layout.c compiled but did not run"),
    };
    if std::fs::write(out.join("layout.rs"), printed).is_err() {
        fail("could not write layout.rs");
    }
}

fn fail(what: &str) -> ! {
    eprintln!(
        "fleetca-mosquitto: {what}. Install Debian's mosquitto-dev and libmosquitto-dev (apt-get install mosquitto-dev libmosquitto-dev)."
    );
    std::process::exit(1)
}
