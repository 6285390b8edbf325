//! Any bytes as the work unit's signed global `adapter`, read as the app reads it against
//! the tiny skill's header and sites, twice: as the file (the signature envelope first), and
//! signed by the target with the project's key, so that every input also reaches the
//! safetensors, header and shape checks behind a valid signature.

use aginet::format::adapter::Adapter;
use aginet::format::signed::{read_public_key, read_signing_key, seal};
use aginet_server::project::Project;
use std::path::Path;

/// Runs one input.
pub fn run(data: &[u8]) {
    crate::server::with_server(|server| {
        let project = &server.project;
        let manifest = project.manifest("tiny").unwrap();
        // Version 1, as the seeds' adapter (fuzz/seeds.sh): the tiny base and skill are the same in
        // every tiny project, only the key differs, and the target signs with its own.
        let expected = Project::adapter_header(&manifest, 1);
        let sites = Project::sites(&manifest).unwrap();
        let public = read_public_key(&project.public_key()).unwrap();
        let secret = read_signing_key(&project.signing_key()).unwrap();
        let path = Path::new("adapter");
        let _ = Adapter::from_signed_bytes(data, path, &expected, &sites, &public);
        let _ = Adapter::from_signed_bytes(&seal(data, &secret), path, &expected, &sites, &public);
    });
}
