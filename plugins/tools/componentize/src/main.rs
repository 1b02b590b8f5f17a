//! `advgame-componentize CORE.wasm OUT.wasm`: wraps a core module built by wit-bindgen into
//! a component (what `wasm-tools component new` does), validating the result. A native
//! helper so the plugin build needs no extra tool install.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [core, out] = args.as_slice() else {
        eprintln!("usage: advgame-componentize CORE.wasm OUT.wasm");
        return ExitCode::from(2);
    };
    match run(core, out) {
        Ok(size) => {
            println!("{out}: {size} bytes");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("advgame-componentize: {core}: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run(core: &str, out: &str) -> Result<usize, String> {
    let bytes = std::fs::read(core).map_err(|e| format!("cannot read: {e}"))?;
    let component = wit_component::ComponentEncoder::default()
        .module(&bytes)
        .and_then(|e| e.validate(true).encode())
        .map_err(|e| format!("{e:#}"))?;
    // Write atomically so an interrupted build never leaves a truncated component behind.
    let tmp = format!("{out}.tmp");
    std::fs::write(&tmp, &component).map_err(|e| format!("cannot write {tmp}: {e}"))?;
    std::fs::rename(&tmp, out).map_err(|e| format!("cannot rename {tmp} to {out}: {e}"))?;
    Ok(component.len())
}
