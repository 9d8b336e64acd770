fn main() {
    let mut args = std::env::args_os();
    if args.nth(1).as_deref() == Some(std::ffi::OsStr::new(kiln::sandbox::helper::SUBCOMMAND)) {
        let spec = args.next().unwrap_or_default();
        std::process::exit(kiln::sandbox::helper::main(std::path::Path::new(&spec)));
    }
    std::process::exit(kiln::cli::main());
}
