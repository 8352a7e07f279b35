//! Build script: on a Windows build host with the `wdk` feature, let wdk-build emit the cfgs
//! that wdk-sys needs. Every other host/feature combination needs nothing.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    #[cfg(all(windows, feature = "wdk"))]
    {
        if let Err(error) = wdk_build::configure_wdk_library_build() {
            println!(
                "cargo::error=system-thread: wdk-build could not configure the WDK: {error:?}"
            );
        }
    }
}
