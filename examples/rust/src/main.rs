//! musespark from Rust: ask a question about an image in Thinking mode and
//! print the answer and the vote.
//!
//!     usage: musespark-example MODEL_DIR IMAGE_PATH [QUESTION]
//!
//! The functions and structs used are declared by hand from
//! include/musespark/musespark.h (no crates); build.rs links libmusespark.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::process::ExitCode;
use std::ptr;

const DEFAULT_QUESTION: &str = "What colour is the square in this picture?";

mod ffi {
    use super::*;

    pub type Status = c_int; // musespark_status
    pub const STATUS_OK: Status = 0;
    pub const MODE_THINKING: c_int = 1; // musespark_mode

    #[repr(C)]
    pub struct Engine {
        _private: [u8; 0],
    }
    #[repr(C)]
    pub struct Request {
        _private: [u8; 0],
    }
    #[repr(C)]
    pub struct Result {
        _private: [u8; 0],
    }

    #[repr(C)]
    pub struct Budgets {
        pub struct_size: u32,
        pub agents: i32,
        pub refine_agents: i32,
        pub max_thinking_tokens: i32,
        pub max_answer_tokens: i32,
        pub max_total_tokens: i64,
        pub deadline_ms: i64,
        pub max_zooms: i32,
    }

    #[repr(C)]
    pub struct Vote {
        pub struct_size: u32,
        pub answer: *const c_char,
        pub display: *const c_char,
        pub votes: i32,
        pub weight: f64,
        pub share: f64,
    }

    extern "C" {
        pub fn musespark_last_error() -> *const c_char;
        pub fn musespark_engine_load(dir: *const c_char, params: *const c_void, out: *mut *mut Engine) -> Status;
        pub fn musespark_engine_free(engine: *mut Engine);
        pub fn musespark_request_init(out: *mut *mut Request) -> Status;
        pub fn musespark_request_free(request: *mut Request);
        pub fn musespark_request_add_message(request: *mut Request, role: *const c_char) -> Status;
        pub fn musespark_request_add_text(request: *mut Request, text: *const c_char) -> Status;
        pub fn musespark_request_add_image_file(request: *mut Request, path: *const c_char) -> Status;
        pub fn musespark_request_set_mode(request: *mut Request, mode: c_int) -> Status;
        pub fn musespark_request_set_seed(request: *mut Request, seed: u64) -> Status;
        pub fn musespark_budgets_init(budgets: *mut Budgets);
        pub fn musespark_request_set_budgets(request: *mut Request, budgets: *const Budgets) -> Status;
        pub fn musespark_engine_ask(
            engine: *const Engine,
            request: *const Request,
            callback: *const c_void,
            user_data: *mut c_void,
            out: *mut *mut Result,
        ) -> Status;
        pub fn musespark_result_free(result: *mut Result);
        pub fn musespark_result_answer(result: *const Result) -> *const c_char;
        pub fn musespark_result_vote_count(result: *const Result) -> i32;
        pub fn musespark_vote_init(vote: *mut Vote);
        pub fn musespark_result_vote(result: *const Result, index: i32, out: *mut Vote) -> Status;
        pub fn musespark_result_agent_count(result: *const Result) -> i32;
    }
}

/// A C string owned by the library, copied (lossily, for display) into Rust.
fn text(p: *const c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

fn last_error() -> String {
    text(unsafe { ffi::musespark_last_error() })
}

fn check(status: ffi::Status) -> Result<(), String> {
    if status == ffi::STATUS_OK {
        Ok(())
    } else {
        Err(last_error())
    }
}

fn cstring(s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("argument contains a NUL byte: {s:?}"))
}

// RAII owners: each frees its handle on every path (the free functions
// accept NULL).
struct Engine(*mut ffi::Engine);
impl Drop for Engine {
    fn drop(&mut self) {
        unsafe { ffi::musespark_engine_free(self.0) }
    }
}
struct Request(*mut ffi::Request);
impl Drop for Request {
    fn drop(&mut self) {
        unsafe { ffi::musespark_request_free(self.0) }
    }
}
struct Answer(*mut ffi::Result);
impl Drop for Answer {
    fn drop(&mut self) {
        unsafe { ffi::musespark_result_free(self.0) }
    }
}

fn run(model_dir: &str, image: &str, question: &str) -> Result<String, String> {
    let (model_dir, image, question) = (cstring(model_dir)?, cstring(image)?, cstring(question)?);
    let user = cstring("user")?;
    unsafe {
        let mut engine = Engine(ptr::null_mut());
        check(ffi::musespark_engine_load(model_dir.as_ptr(), ptr::null(), &mut engine.0))?;

        let mut request = Request(ptr::null_mut());
        check(ffi::musespark_request_init(&mut request.0))?;
        check(ffi::musespark_request_add_message(request.0, user.as_ptr()))?;
        check(ffi::musespark_request_add_image_file(request.0, image.as_ptr()))?;
        check(ffi::musespark_request_add_text(request.0, question.as_ptr()))?;
        check(ffi::musespark_request_set_mode(request.0, ffi::MODE_THINKING))?;
        let mut budgets = std::mem::MaybeUninit::<ffi::Budgets>::uninit();
        ffi::musespark_budgets_init(budgets.as_mut_ptr());
        let mut budgets = budgets.assume_init();
        budgets.agents = 3;
        budgets.max_thinking_tokens = 8;
        budgets.max_answer_tokens = 4;
        check(ffi::musespark_request_set_budgets(request.0, &budgets))?;
        check(ffi::musespark_request_set_seed(request.0, 1))?;

        let mut result = Answer(ptr::null_mut());
        check(ffi::musespark_engine_ask(engine.0, request.0, ptr::null(), ptr::null_mut(), &mut result.0))?;

        let mut out = format!("answer: {}\n", text(ffi::musespark_result_answer(result.0)));
        for i in 0..ffi::musespark_result_vote_count(result.0) {
            let mut vote = std::mem::MaybeUninit::<ffi::Vote>::uninit();
            ffi::musespark_vote_init(vote.as_mut_ptr());
            let mut vote = vote.assume_init();
            check(ffi::musespark_result_vote(result.0, i, &mut vote))?;
            out += &format!("vote: {} ({} votes, {:.1}%)\n", text(vote.answer), vote.votes, vote.share * 100.0);
        }
        out += &format!("agents: {}\n", ffi::musespark_result_agent_count(result.0));
        Ok(out)
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 || args.len() > 4 {
        eprintln!("usage: {} MODEL_DIR IMAGE_PATH [QUESTION]", args[0]);
        return ExitCode::from(2);
    }
    let question = args.get(3).map(String::as_str).unwrap_or(DEFAULT_QUESTION);
    match run(&args[1], &args[2], question) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
    }
}
