//! The built-in seeds and web root are embedded (`assets`, `include_dir!`), which does not tell
//! cargo to rebuild when a file is added to them: this does.
fn main() {
    println!("cargo:rerun-if-changed=../seeds/requests");
    println!("cargo:rerun-if-changed=../seeds/root");
}
