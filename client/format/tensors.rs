//! Named f32 tensors in safetensors form, with one JSON header: the shared body of the adapter,
//! delta and checkpoint files.
//!
//! Each file stores its header as the single safetensors metadata entry `aginet` (one key, so
//! the bytes never depend on a hash map's order). Readers check `format` and `version` before
//! anything else and reject unknown values, quoting them.

use crate::error::Result;
use candle_core::{Device, Tensor, Var};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// Tensors by name, in name order.
pub type NamedTensors = BTreeMap<String, Tensor>;

/// The metadata key holding a file's JSON header.
const HEADER_KEY: &str = "aginet";

/// Serializes `tensors` (all f32) with `header` as the file's metadata.
pub fn encode<H: Serialize>(tensors: &NamedTensors, header: &H) -> Result<Vec<u8>> {
    let mut buffers = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let values = t
            .flatten_all()?
            .to_dtype(candle_core::DType::F32)?
            .to_vec1::<f32>()?;
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        buffers.push((name.clone(), t.dims().to_vec(), bytes));
    }
    let views: Vec<(String, TensorView<'_>)> = buffers
        .iter()
        .map(|(name, shape, bytes)| {
            let view = TensorView::new(Dtype::F32, shape.clone(), bytes)
                .map_err(|e| candle_core::Error::Msg(format!("tensor {name}: {e}")))?;
            Ok((name.clone(), view))
        })
        .collect::<Result<_>>()?;
    let json = serde_json::to_string(header).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    let meta = HashMap::from([(HEADER_KEY.to_string(), json)]);
    safetensors::serialize(views, Some(meta))
        .map_err(|e| candle_core::Error::Msg(e.to_string()).into())
}

/// Parses safetensors bytes into the header's raw JSON and f32 tensors. Errors are messages for
/// the caller to attach to its file.
pub fn decode(bytes: &[u8]) -> std::result::Result<(String, NamedTensors), String> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| format!("not a safetensors file: {e}"))?;
    let (_, metadata) =
        SafeTensors::read_metadata(bytes).map_err(|e| format!("not a safetensors file: {e}"))?;
    let header = metadata
        .metadata()
        .as_ref()
        .and_then(|m| m.get(HEADER_KEY))
        .cloned()
        .ok_or_else(|| format!("metadata entry {HEADER_KEY:?} is missing"))?;
    let mut tensors = NamedTensors::new();
    for (name, view) in st.tensors() {
        let t = f32_tensor(&view).map_err(|m| format!("tensor {name}: {m}"))?;
        tensors.insert(name, t);
    }
    Ok((header, tensors))
}

/// A safetensors F32 tensor as a CPU tensor; any other dtype is an error message.
pub fn f32_tensor(view: &TensorView<'_>) -> std::result::Result<Tensor, String> {
    if view.dtype() != Dtype::F32 {
        return Err(format!("dtype {:?}, expected F32", view.dtype()));
    }
    let values: Vec<f32> = view
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Tensor::from_vec(values, view.shape(), &Device::Cpu).map_err(|e| e.to_string())
}

/// Parses a JSON header after checking its `format` and `version` fields.
pub fn parse_header<H: DeserializeOwned>(
    json: &str,
    format: &str,
    version: u32,
) -> std::result::Result<H, String> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("header is not JSON: {e}"))?;
    check_format_version(&value, format, version)?;
    serde_json::from_value(value).map_err(|e| format!("header: {e}"))
}

/// Checks the `format` and `version` fields of a JSON document, quoting unknown values.
pub fn check_format_version(
    value: &serde_json::Value,
    format: &str,
    version: u32,
) -> std::result::Result<(), String> {
    match value.get("format") {
        Some(serde_json::Value::String(f)) if f == format => {}
        Some(other) => return Err(format!("field format is {other}, expected {format:?}")),
        None => return Err(format!("field format is missing, expected {format:?}")),
    }
    match value.get("version").and_then(serde_json::Value::as_u64) {
        Some(v) if v == version as u64 => Ok(()),
        Some(v) => Err(format!(
            "field version is {v}, this build reads version {version}"
        )),
        None => Err(format!(
            "field version is missing or not a number, expected {version}"
        )),
    }
}

/// Makes the tensors `names` of `tensors` trainable: each becomes a `Var` holding its current
/// value, the map points at it (so models built over the map train it), and the `Var`s are
/// returned in `names` order for the optimizer.
pub fn make_trainable(
    tensors: &mut NamedTensors,
    names: &[String],
) -> candle_core::Result<Vec<(String, Var)>> {
    names
        .iter()
        .map(|name| {
            let start = tensors
                .get(name)
                .ok_or_else(|| candle_core::Error::Msg(format!("no tensor {name} to train")))?;
            let var = Var::from_tensor(start)?;
            tensors.insert(name.clone(), var.as_tensor().clone());
            Ok((name.clone(), var))
        })
        .collect()
}

/// Every tensor of `tensors` times `factor`.
pub fn scaled(tensors: &NamedTensors, factor: f64) -> candle_core::Result<NamedTensors> {
    tensors
        .iter()
        .map(|(name, t)| Ok((name.clone(), (t * factor)?)))
        .collect()
}

/// Tensor `name` of `tensors`, which must have shape `dims`; the message names what is wrong.
pub fn shaped(
    tensors: &NamedTensors,
    name: &str,
    dims: &[usize],
) -> std::result::Result<Tensor, String> {
    let t = tensors
        .get(name)
        .ok_or_else(|| format!("no tensor {name}"))?;
    if t.dims() != dims {
        return Err(format!("{name} is {:?}, expected {dims:?}", t.dims()));
    }
    Ok(t.clone())
}

/// Checks that `tensors` holds exactly the names in `want`, each with the given shape.
pub fn check_shapes(
    tensors: &NamedTensors,
    want: &[(String, Vec<usize>)],
) -> std::result::Result<(), String> {
    for (name, dims) in want {
        match tensors.get(name) {
            None => return Err(format!("tensor {name} is missing")),
            Some(t) if t.dims() != dims.as_slice() => {
                return Err(format!(
                    "tensor {name} has shape {:?}, expected {dims:?}",
                    t.dims()
                ))
            }
            Some(_) => {}
        }
    }
    if let Some(extra) = tensors.keys().find(|k| !want.iter().any(|(n, _)| n == *k)) {
        return Err(format!("unexpected tensor {extra}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zeros(dims: &[usize]) -> Tensor {
        Tensor::zeros(dims, candle_core::DType::F32, &Device::Cpu).unwrap()
    }

    #[test]
    fn shaped_names_a_missing_tensor_or_a_wrong_shape() {
        let mut t = NamedTensors::new();
        t.insert("w".into(), zeros(&[2, 3]));
        assert_eq!(shaped(&t, "w", &[2, 3]).unwrap().dims(), &[2, 3]);
        assert_eq!(shaped(&t, "v", &[2, 3]).unwrap_err(), "no tensor v");
        assert_eq!(
            shaped(&t, "w", &[3, 2]).unwrap_err(),
            "w is [2, 3], expected [3, 2]"
        );
    }

    #[test]
    fn make_trainable_swaps_in_vars_that_hold_the_values_and_names_a_missing_one() {
        let mut t = NamedTensors::new();
        t.insert("a".into(), zeros(&[2]));
        t.insert("b".into(), Tensor::new(&[1f32, 2.0], &Device::Cpu).unwrap());
        let vars = make_trainable(&mut t, &["b".to_string()]).unwrap();
        assert_eq!(vars.len(), 1);
        assert_eq!(vars[0].0, "b");
        vars[0].1.set(&zeros(&[2])).unwrap();
        assert_eq!(
            t["b"].to_vec1::<f32>().unwrap(),
            [0.0, 0.0],
            "the map sees the Var"
        );
        let e = make_trainable(&mut t, &["c".to_string()]).unwrap_err();
        assert!(e.to_string().contains("no tensor c to train"), "{e}");
    }
}
