fn main() -> std::process::ExitCode {
    insurancectl::main_entry()
}
