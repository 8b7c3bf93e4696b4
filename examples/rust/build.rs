// Links libmusespark: MUSESPARK_LIB_DIR names the folder holding
// libmusespark.so (e.g. build/lib); it becomes a link search path and an
// rpath, so the program runs without LD_LIBRARY_PATH. Without the variable
// the system's library path is used (an installed musespark).
use std::env;

fn main() {
    println!("cargo:rerun-if-env-changed=MUSESPARK_LIB_DIR");
    if let Ok(dir) = env::var("MUSESPARK_LIB_DIR") {
        if !dir.is_empty() {
            println!("cargo:rustc-link-search=native={dir}");
            println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        }
    }
    println!("cargo:rustc-link-lib=dylib=musespark");
}
