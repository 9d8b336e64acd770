//! kiln: daemonless builds of container image families.
//!
//! Where things happen:
//! - `frontend`: a Dockerfile is parsed into stages and instructions;
//! - `plan`: instructions are expanded into steps, with ARG/ENV scoping;
//! - `engine`: steps are looked up in the cache or run, stage by stage;
//! - `sandbox`: a RUN (or COPY) step runs in namespaces over overlayfs;
//! - `layer`: a directory of changes becomes a tar layer, and back;
//! - `store`: the OCI image layout with blobs, images, cache and layers;
//! - `export`: images leave the store as OCI layouts or docker archives;
//! - `bases`: base roots from mmdebstrap or a rootfs tar.

pub mod bases;
pub mod cli;
pub mod digest;
pub mod engine;
pub mod export;
pub mod frontend;
pub mod image;
pub mod layer;
pub mod plan;
pub mod project;
pub mod sandbox;
pub mod store;
