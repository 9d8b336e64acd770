//! Layers: a directory of changes becomes a tar blob (`commit`), and a tar
//! becomes a directory again (`unpack`), both through paths confined to
//! their root (`confined`).

pub mod commit;
pub mod confined;
pub mod unpack;

#[cfg(test)]
mod tests;
