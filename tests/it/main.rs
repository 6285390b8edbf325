//! The integration tests of the volunteer app and its training core, as one test binary.

mod bad_input;
mod boinc_differential;
mod boinc_e2e;
mod boinc_harness;
mod boinc_xml_files;
mod bundled_boinc_source;
mod digits;
mod fixture;
mod formats;
mod gemma_base;
mod gemma_forward;
mod gemma_generate;
mod gemma_gradcheck;
mod gemma_tokenizer;
mod generic_ops;
mod grad_compare;
mod gradcheck;
mod huge_pages;
mod learning;
mod minilm_tokenizer;
mod pipeline;
mod resume;
