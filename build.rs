//! Pulls the `protoc-bin-vendored` build-dependency into every build, so
//! `scripts/protoc-shim` (PROTOC in `.cargo/config.toml`) finds a `protoc`
//! for the etcd client's code generation on a machine that has none, and
//! warns when this platform has no bundled binary.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if let Err(e) = protoc_bin_vendored::protoc_bin_path() {
        println!(
            "cargo:warning=no bundled protoc for this platform ({e}): install protoc or set PROTOC"
        );
    }
}
