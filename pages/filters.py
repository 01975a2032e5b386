"""Filters: the first layer's kernels, their responses to a face, and the dataset patches that excite each."""
import numpy as np
import streamlit as st

from app_common import file_version, get_faces, get_model, model_or_stop, sidebar
from fer_core import interpret
from fer_core.data import CLASSES, UPLOAD_MAX_PIXELS, DataError, open_image, to_face48

ctx = sidebar()
st.title("Filters")


@st.cache_data(show_spinner="Scanning faces for each filter's strongest responses...", max_entries=16)
def cached_top_patches(ckpt: str, ckpt_key: float, data: str, data_key: float, split: str, n_faces: int, k: int,
                       activation: bool):
    model, prep = get_model(ckpt)
    return interpret.top_patches(model, prep, get_faces(data, split).x[:n_faces], k=k, activation=activation)


model, prep = model_or_stop(ctx.checkpoint)
try:
    faces = get_faces(ctx.data, ctx.split)
    ckpt_key, data_key = file_version(ctx.checkpoint), file_version(ctx.data)
    weights = interpret.filter_weights(model)  # (F, kh, kw)
except (DataError, OSError, ValueError) as e:
    st.error(str(e))
    st.stop()

n_filters, kh, kw = weights.shape
st.subheader(f"{n_filters} first-layer filters ({kh}x{kw})")
st.image(interpret.filter_grid(weights, ncols=16, scale=16), caption="red: weight > 0 (excites), blue: < 0 (inhibits); "
         "each kernel on its own symmetric scale")
activation = st.toggle("Responses after batch norm and activation (off: raw convolution)", value=True,
                       key="flt_activation")

st.subheader("Responses to a face")
sent = st.session_state.get("interp_face")
sources = (["Face from the Saliency page"] if sent is not None else []) + ["Face of this split", "Upload"]
if st.session_state.get("flt_source") not in sources:
    st.session_state["flt_source"] = sources[0]
source = st.radio("Face", sources, horizontal=True, key="flt_source")
face, label = None, ""
if source == "Face from the Saliency page":
    face, label = sent["face"], sent["label"]
elif source == "Face of this split":
    k = st.number_input(f"Face index (0-{len(faces) - 1})", 0, len(faces) - 1, 0, key="flt_index")
    face, label = faces.x[k], f"#{k} · {CLASSES[int(faces.y[k])]}"
else:
    up = st.file_uploader("A face photo", key="flt_upload")
    if up is not None:
        try:
            face, label = to_face48(open_image(up.getvalue(), name=up.name, max_pixels=UPLOAD_MAX_PIXELS)), up.name
        except DataError as e:
            st.error(str(e))
if face is not None:
    resp = interpret.filter_responses(model, prep, face, activation=activation)  # (F, h, w)
    c1, c2 = st.columns([1, 5])
    c1.image(interpret.upscale(face, 2), caption=label)
    c2.image(interpret.response_grid(resp, ncols=16, scale=2), caption=f"{n_filters} feature maps "
             f"({resp.shape[1]}x{resp.shape[2]}), each on its own range (viridis: dark low, yellow high)")

st.subheader("Top-activating patches")
t1, t2 = st.columns(2)
n_faces = t1.slider("Faces to scan", min(50, len(faces)), len(faces), min(len(faces), 2000), key="flt_n_faces")
k = t2.slider("Patches per filter", 1, 16, 8, key="flt_k")
top = cached_top_patches(ctx.checkpoint, ckpt_key, ctx.data, data_key, ctx.split, n_faces, k, activation)
f = st.selectbox("Filter", range(n_filters), key="flt_filter",
                 format_func=lambda i: f"filter {i} (peak response {top.values[i, 0]:.2f})")
c1, c2 = st.columns([1, 5])
c1.image(interpret.filter_grid(weights[f : f + 1], ncols=1, scale=16), caption=f"filter {f}")
c2.image([interpret.upscale(p, 6) for p in top.patches[f]],
         caption=[f"#{i} · {v:.2f}" for i, v in zip(top.face_index[f], top.values[f])])
with st.expander("All filters: weights and top patches"):
    rows, size = [], top.patches.shape[-1] * 4
    for i in range(n_filters):
        w = interpret.filter_grid(weights[i : i + 1], ncols=1, scale=max(1, size // max(kh, kw)))[:size, :size]
        kk = top.patches.shape[1]
        tiles = np.full((kk + 1, size, size, 3), 255, np.uint8)  # (kk+1, size, size, 3): weight, then patches
        tiles[0, : w.shape[0], : w.shape[1]] = w
        tiles[1:] = np.repeat(np.stack([interpret.upscale(p, 4) for p in top.patches[i]])[..., None], 3, -1)
        rows.append(interpret.mosaic(tiles, kk + 1, pad=2))
    st.image(interpret.mosaic(np.stack(rows), 1, pad=4),
             caption="one row per filter: its weights, then its top patches, strongest first")
