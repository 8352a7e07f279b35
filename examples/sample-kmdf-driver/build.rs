//! Build script: wdk-build finds the WDK, emits the linker arguments of a KMDF driver and the
//! `driver_model__driver_type` cfg that wdk-sys and wdk are compiled with.

fn main() -> Result<(), wdk_build::ConfigError> {
    wdk_build::configure_wdk_binary_build()
}
