"""Filters: any conv layer's kernels (the first by default), their responses to a face, and the dataset patches
that excite each, with the receptive field drawn."""
import streamlit as st

from app_common import file_version, get_faces, get_model, model_or_stop, sidebar
from fer_core import draw, filters, render
from fer_core.text import md
from fer_core.images import UPLOAD_MAX_PIXELS, DataError, open_image, to_face48


@st.cache_data(show_spinner="Scanning faces for each filter's strongest responses...", max_entries=16)
def cached_top_patches(ckpt: str, ckpt_key: float, data: str, data_key: float, split: str, n_faces: int, k: int,
                       activation: bool, layer: int = 0):
    model, prep = get_model(ckpt)
    return filters.top_patches(model, prep, get_faces(data, split).x[:n_faces], k=k, activation=activation,
                               layer=layer)


def layer_choice(model, convs: list[int], i: int) -> str:
    """"conv 2 · features.2 · 64 filters, 3x3 · receptive field 5 px": a conv layer in the picker."""
    conv = model.features[convs[i]]
    size = filters.receptive_field(model, i)[0]
    return (f"conv {i + 1} · features.{convs[i]} · {conv.out_channels} filters, "
            f"{conv.kernel_size[0]}x{conv.kernel_size[1]} · receptive field {size} px")


def load(ctx):
    """(model, prep, faces, conv layer positions, the layer picked, its weights (F, kh, kw)); a page that cannot
    have them says why and stops."""
    model, prep = model_or_stop(ctx.checkpoint)
    try:
        faces = get_faces(ctx.data, ctx.split)
        convs = filters.conv_layers(model)
        if st.session_state.get("flt_layer", 0) not in range(len(convs)):
            st.session_state["flt_layer"] = 0  # a layer of the checkpoint before a switch
        layer = st.selectbox("Conv layer", range(len(convs)), key="flt_layer",
                             format_func=lambda i: layer_choice(model, convs, i)) if convs else 0
        weights = filters.filter_weights(model, layer)  # (F, kh, kw)
    except (DataError, OSError, ValueError) as e:
        st.error(md(e))
        st.stop()
    return model, prep, faces, convs, layer, weights


def kernels(model, convs, layer: int, weights) -> bool:
    """The layer's kernels and their colour scale -> whether responses are shown after the activation."""
    n_filters, kh, kw = weights.shape
    n_in = model.features[convs[layer]].in_channels
    st.subheader(f"{n_filters} first-layer filters ({kh}x{kw})" if layer == 0 else
                 f"{n_filters} filters of conv layer {layer + 1} ({kh}x{kw}, each averaged over its {n_in} input "
                 "channels)")
    st.image(render.filter_grid(weights, ncols=16, scale=16, numbered=True, pad=8),
             caption="filters numbered 0-%d; red: weight > 0 (excites), blue: < 0 (inhibits); each kernel on its own "
                     "symmetric scale" % (n_filters - 1))
    st.image(draw.colorbar("bwr", 240, 10, symmetric=True), width=240,
             caption="weight: most negative (blue) → 0 (white) → most positive (red)")
    return st.toggle("Responses after batch norm and activation (off: raw convolution)", value=True,
                     key="flt_activation")


def pick_face(faces):
    """(face (48, 48) or None, its label): the one the Saliency page showed, one of this split, or an upload."""
    sent = st.session_state.get("interp_face")
    sources = (["Face from the Saliency page"] if sent is not None else []) + ["Face of this split", "Upload"]
    if st.session_state.get("flt_source") not in sources:
        st.session_state["flt_source"] = sources[0]
    source = st.radio("Face", sources, horizontal=True, key="flt_source")
    if source == "Face from the Saliency page":
        return sent["face"], sent["label"]
    if source == "Face of this split":
        k = st.number_input(f"Face index (0-{len(faces) - 1})", 0, len(faces) - 1, 0, key="flt_index")
        return render.split_face(faces.x, faces.y, k)
    up = st.file_uploader("A face photo", key="flt_upload")
    if up is not None:
        try:
            return to_face48(open_image(up.getvalue(), name=up.name, max_pixels=UPLOAD_MAX_PIXELS)), up.name
        except DataError as e:
            st.error(md(e))
    return None, ""


def responses(model, prep, faces, layer: int, n_filters: int, activation: bool) -> None:
    """The picked face and the layer's feature maps of it (nothing below the picker until there is a face)."""
    st.subheader("Responses to a face")
    face, label = pick_face(faces)
    if face is None:
        return
    resp = filters.filter_responses(model, prep, face, activation=activation, layer=layer)  # (F, h, w)
    c1, c2 = st.columns([1, 5])
    c1.image(draw.upscale(face, 2), caption=md(label))
    c2.image(render.response_grid(resp, ncols=16, scale=max(1, 96 // resp.shape[1]), numbered=True, pad=6),
             caption=f"{n_filters} feature "
             f"maps ({resp.shape[1]}x{resp.shape[2]}), numbered like the filters, each on its own range")
    c2.image(draw.colorbar("viridis", 240, 10), width=240, caption="response: low (dark) → high (yellow)")


def top_activating(ctx, model, faces, layer: int, weights, activation: bool) -> None:
    """Each filter's strongest responses over the split's faces: the patches, one filter in detail, all in rows."""
    st.subheader("Top-activating patches")
    n_filters, field = len(weights), filters.receptive_field(model, layer)[0]
    t1, t2 = st.columns(2)
    n_faces = t1.slider("Faces to scan", min(50, len(faces)), len(faces), min(len(faces), 2000), key="flt_n_faces")
    k = t2.slider("Patches per filter", 1, 16, 8, key="flt_k")
    top = cached_top_patches(ctx.checkpoint, file_version(ctx.checkpoint), ctx.data, file_version(ctx.data),
                             ctx.split, n_faces, k, activation, layer)
    if st.session_state.get("flt_filter", 0) >= n_filters:
        st.session_state["flt_filter"] = 0  # the last layer had more filters
    f = st.selectbox("Filter", range(n_filters), key="flt_filter", format_func=lambda i: render.filter_choice(top, i))
    detail = render.filter_detail(weights, top, f, patch_scale=max(1, 72 // top.patches.shape[-1]), field=True)
    c1, c2 = st.columns([1, 5])
    c1.image(detail.kernel, width=72, caption=f"filter {f}")
    c2.image(detail.patches, width=max(72, top.patches.shape[-1]), caption=detail.captions)  # one displayed size
    st.caption(f"Each patch is the {field}x{field}-pixel receptive field of the filter's strongest response in that "
               f"face (outlined) with {top.context} pixels around it; black where it hangs over the face's border.")
    shown_rows = min(n_filters, 64)  # a deep layer has hundreds of filters: the first 64 keep the page light
    with st.expander("All filters: weights and top patches"):
        st.image(render.filter_rows(weights[:shown_rows], top.patches[:shown_rows], top.values[:shown_rows], size=48,
                                    pad=6),
                 caption="one labelled row per filter: its kernel, then its top patches (strongest first, response "
                         "under each), all at the same size" + (f"; the first {shown_rows} of {n_filters} filters"
                                                                 if shown_rows < n_filters else ""))


ctx = sidebar()
st.title("Filters")
model, prep, faces, convs, layer, weights = load(ctx)
activation = kernels(model, convs, layer, weights)
responses(model, prep, faces, layer, len(weights), activation)
top_activating(ctx, model, faces, layer, weights, activation)
