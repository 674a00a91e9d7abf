// The admin UI in ../web is embedded into the binary; rebuild when any file there changes
// (rust-embed alone notices edits to embedded files, not new ones).
fn main() {
    println!("cargo:rerun-if-changed=../web");
}
