//! tch's build script only adds an rpath to tch's own targets; every binary and test of this
//! crate links libtorch too, so we add the rpath here (no LD_LIBRARY_PATH needed) and force
//! `libtorch` to stay linked so `libtorch_cuda.so` loads and a GPU is seen.
fn main() {
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
    println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
    println!("cargo:rustc-link-arg=-ltorch");
}
