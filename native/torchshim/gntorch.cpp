// Implementation of gntorch.h over ATen. Only <ATen/ATen.h> is included (not
// <torch/torch.h>): it compiles in about a third of the time and needs nothing from the
// autograd or nn front ends. The same source builds against libtorch 1.13 (Debian, CPU)
// and 2.x (CUDA builds select devices with dev_type 1). Where the two differ the code
// says so next to a TORCH_VERSION_MAJOR test.

#include "gntorch.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <c10/core/InferenceMode.h>
#include <torch/version.h>

#if !defined(_WIN32)
#include <dlfcn.h>
#endif

#include <atomic>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

struct gn_tensor {
    at::Tensor value;
};

namespace {

thread_local std::string last_error;
thread_local bool has_error = false;
std::atomic<int64_t> live{0};

void set_error(const char* what) {
    last_error = what ? what : "unknown error";
    has_error = true;
}

gn_tensor* wrap(at::Tensor t) {
    auto* h = new gn_tensor{std::move(t)};
    live.fetch_add(1, std::memory_order_relaxed);
    return h;
}

const at::Tensor& val(const gn_tensor* t) {
    if (t == nullptr) throw std::invalid_argument("a null tensor handle was passed to the torch shim");
    return t->value;
}

at::ScalarType scalar_type(int32_t code) {
    switch (code) {
        case 0: return at::kFloat;
        case 1: return at::kDouble;
        case 2: return at::kInt;
        default: throw std::invalid_argument("unknown dtype code " + std::to_string(code));
    }
}

int32_t dtype_code(at::ScalarType s) {
    switch (s) {
        case at::kFloat: return 0;
        case at::kDouble: return 1;
        case at::kInt: return 2;
        default: return -1;
    }
}

at::Device device(int32_t type, int32_t index) {
    switch (type) {
        case 0: return at::Device(at::kCPU);
        case 1: return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(index));
        default: throw std::invalid_argument("unknown device type " + std::to_string(type));
    }
}

std::vector<int64_t> dims(const int32_t* p, int32_t n) {
    std::vector<int64_t> v(static_cast<size_t>(n));
    for (int32_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = p[i];
    return v;
}

// Runs `body`, turning any C++ exception into the thread's last error and a default value.
// Every call runs in inference mode: no autograd bookkeeping on these tensors.
template <typename R, typename F>
R guarded(R fallback, F&& body) {
    has_error = false;
    try {
        c10::InferenceMode guard;
        return body();
    } catch (const c10::Error& e) {
        set_error(e.what_without_backtrace());
    } catch (const std::exception& e) {
        set_error(e.what());
    } catch (...) {
        set_error("unknown C++ exception in the torch shim");
    }
    return fallback;
}

// "No bias" for convolution_backward: c10::nullopt in 1.13, where c10::optional is not
// std::optional; a default-constructed OptionalIntArrayRef means the same in every version.
at::OptionalIntArrayRef no_bias() { return at::OptionalIntArrayRef(); }

template <typename F>
gn_tensor* tensor_op(F&& body) {
    return guarded<gn_tensor*>(nullptr, [&]() { return wrap(body()); });
}

}  // namespace

extern "C" {

const char* gn_last_error(void) { return has_error ? last_error.c_str() : nullptr; }
int32_t gn_abi_version(void) { return 2; }
int64_t gn_live_tensors(void) { return live.load(std::memory_order_relaxed); }

int32_t gn_cuda_device_count(void) {
    return guarded<int32_t>(0, []() { return at::hasCUDA() ? static_cast<int32_t>(at::getNumGPUs()) : 0; });
}

const char* gn_torch_version(void) {
    static const std::string v = std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
                                 std::to_string(TORCH_VERSION_PATCH);
    return v.c_str();
}

int32_t gn_synchronize(int32_t dev_type, int32_t dev_index) {
    return guarded<int32_t>(-1, [&]() {
        const auto dev = device(dev_type, dev_index);
        // the CUDA hooks are reachable from a CPU-only build too (they throw there), so
        // this needs no CUDA headers; 1.13 takes the index as int64_t, 2.x as DeviceIndex
        if (dev.is_cuda()) at::detail::getCUDAHooks().deviceSynchronize(static_cast<c10::DeviceIndex>(dev_index));
        return 0;
    });
}

int32_t gn_set_allow_tf32(int32_t allow) {
    return guarded<int32_t>(-1, [&]() {
        // both setters exist from 1.12 on; 2.9 added a finer fp32-precision API that these
        // still drive
        at::globalContext().setAllowTF32CuBLAS(allow != 0);
        at::globalContext().setAllowTF32CuDNN(allow != 0);
        return 0;
    });
}

void gn_set_num_threads(int32_t n) {
    guarded<int>(0, [&]() {
        at::set_num_threads(n);
#if !defined(_WIN32)
        // A generic-BLAS libtorch (Debian's) calls OpenBLAS through libblas.so.3, whose own
        // thread pool at::set_num_threads does not reach: set it too when it is loaded.
        using setter = void (*)(int);
        if (auto f = reinterpret_cast<setter>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) f(n);
#endif
        return 0;
    });
}

int32_t gn_get_num_threads(void) {
    return guarded<int32_t>(-1, []() { return static_cast<int32_t>(at::get_num_threads()); });
}

void gn_free(gn_tensor* t) {
    if (t == nullptr) return;
    delete t;
    live.fetch_sub(1, std::memory_order_relaxed);
}

int32_t gn_meta(const gn_tensor* t, int32_t* shape, int32_t cap, int32_t* dtype) {
    return guarded<int32_t>(-1, [&]() {
        const auto& v = val(t);
        const auto r = static_cast<int32_t>(v.dim());
        for (int32_t i = 0; i < r && i < cap; ++i) shape[i] = static_cast<int32_t>(v.size(i));
        *dtype = dtype_code(v.scalar_type());
        return r;
    });
}

gn_tensor* gn_zeros(const int32_t* shape, int32_t rank, int32_t dtype, int32_t dev_type, int32_t dev_index) {
    return tensor_op([&]() {
        return at::zeros(dims(shape, rank), at::TensorOptions().dtype(scalar_type(dtype)).device(device(dev_type, dev_index)));
    });
}

gn_tensor* gn_full(const int32_t* shape, int32_t rank, double value, int32_t dtype, int32_t dev_type, int32_t dev_index) {
    return tensor_op([&]() {
        return at::full(dims(shape, rank), value, at::TensorOptions().dtype(scalar_type(dtype)).device(device(dev_type, dev_index)));
    });
}

gn_tensor* gn_from_data(const void* data, const int32_t* shape, int32_t rank, int32_t dtype, int32_t dev_type, int32_t dev_index) {
    return tensor_op([&]() {
        auto host = at::empty(dims(shape, rank), at::TensorOptions().dtype(scalar_type(dtype)));
        const auto bytes = static_cast<size_t>(host.numel()) * host.element_size();
        if (bytes > 0) std::memcpy(host.data_ptr(), data, bytes);
        const auto dev = device(dev_type, dev_index);
        return dev.is_cpu() ? host : host.to(dev);
    });
}

int32_t gn_to_data(const gn_tensor* t, void* out, int64_t bytes) {
    return guarded<int32_t>(-1, [&]() {
        auto host = val(t).to(at::kCPU).contiguous();
        const auto need = static_cast<int64_t>(host.numel()) * static_cast<int64_t>(host.element_size());
        if (need != bytes)
            throw std::invalid_argument("gn_to_data: the tensor holds " + std::to_string(need) +
                                        " bytes but the buffer has " + std::to_string(bytes));
        if (need > 0) std::memcpy(out, host.data_ptr(), static_cast<size_t>(need));
        return 0;
    });
}

gn_tensor* gn_to_device(const gn_tensor* t, int32_t dev_type, int32_t dev_index) {
    return tensor_op([&]() { return val(t).to(device(dev_type, dev_index)); });
}

gn_tensor* gn_cast(const gn_tensor* t, int32_t dtype) {
    return tensor_op([&]() { return val(t).to(scalar_type(dtype)); });
}

// ---- layout ----

gn_tensor* gn_view(const gn_tensor* t, const int32_t* shape, int32_t rank) {
    return tensor_op([&]() { return val(t).reshape(dims(shape, rank)); });
}

gn_tensor* gn_permute(const gn_tensor* t, const int32_t* perm, int32_t rank) {
    return tensor_op([&]() { return val(t).permute(dims(perm, rank)); });
}

gn_tensor* gn_expand(const gn_tensor* t, const int32_t* shape, int32_t rank) {
    return tensor_op([&]() { return val(t).expand(dims(shape, rank)); });
}

// Slices are copied: a view would keep the whole source storage alive.
gn_tensor* gn_slice(const gn_tensor* t, const int32_t* starts, const int32_t* lengths, int32_t rank) {
    return tensor_op([&]() {
        at::Tensor v = val(t);
        for (int32_t d = 0; d < rank; ++d) v = v.narrow(d, starts[d], lengths[d]);
        return v.contiguous();
    });
}

gn_tensor* gn_pad(const gn_tensor* t, const int32_t* starts, const int32_t* out_shape, int32_t rank) {
    return tensor_op([&]() {
        const auto& src = val(t);
        auto out = at::zeros(dims(out_shape, rank), src.options());
        at::Tensor window = out;
        for (int32_t d = 0; d < rank; ++d) window = window.narrow(d, starts[d], src.size(d));
        window.copy_(src);
        return out;
    });
}

gn_tensor* gn_cat(const gn_tensor* const* ts, int32_t count, int32_t dim) {
    return tensor_op([&]() {
        std::vector<at::Tensor> parts;
        parts.reserve(static_cast<size_t>(count));
        for (int32_t i = 0; i < count; ++i) parts.push_back(val(ts[i]));
        return at::cat(parts, dim);
    });
}

// ---- elementwise ----

gn_tensor* gn_unary(int32_t kind, const gn_tensor* t) {
    return tensor_op([&]() -> at::Tensor {
        const auto& x = val(t);
        switch (kind) {
            case 0: return at::neg(x);
            case 1: return at::exp(x);
            case 2: return at::log(x);
            case 3: return at::tanh(x);
            case 4: return at::sigmoid(x);
            // max(x, 0) + log1p(exp(-|x|)): exact for every x (no linear cut-off).
            case 5: return at::clamp_min(x, 0) + at::log1p(at::exp(-at::abs(x)));
            case 6: return at::relu(x);
            case 7: return at::sqrt(x);
            case 8: return at::abs(x);
            case 9: return at::sign(x);
            default: throw std::invalid_argument("unknown unary kind " + std::to_string(kind));
        }
    });
}

gn_tensor* gn_binary(int32_t kind, const gn_tensor* a, const gn_tensor* b) {
    return tensor_op([&]() -> at::Tensor {
        const auto& x = val(a);
        const auto& y = val(b);
        switch (kind) {
            case 0: return at::add(x, y);
            case 1: return at::sub(x, y);
            case 2: return at::mul(x, y);
            case 3: return at::div(x, y);
            default: throw std::invalid_argument("unknown binary kind " + std::to_string(kind));
        }
    });
}

gn_tensor* gn_add_scaled(const gn_tensor* a, const gn_tensor* b, double beta) {
    return tensor_op([&]() { return at::add(val(a), val(b), beta); });
}

gn_tensor* gn_tanh_grad(const gn_tensor* y, const gn_tensor* t) {
    return tensor_op([&]() {
        const auto& yy = val(y);
        return val(t) * (1.0 - yy * yy);
    });
}

gn_tensor* gn_add_scalar(const gn_tensor* t, double c) {
    return tensor_op([&]() { return at::add(val(t), c); });
}

gn_tensor* gn_mul_scalar(const gn_tensor* t, double c) {
    return tensor_op([&]() { return at::mul(val(t), c); });
}

gn_tensor* gn_pow_scalar(const gn_tensor* t, double c) {
    return tensor_op([&]() { return at::pow(val(t), c); });
}

gn_tensor* gn_gt_scalar(const gn_tensor* t, double c) {
    return tensor_op([&]() {
        const auto& x = val(t);
        return at::gt(x, c).to(x.scalar_type());
    });
}

// ---- reductions ----

gn_tensor* gn_sum(const gn_tensor* t) {
    return tensor_op([&]() { return at::sum(val(t)); });
}

gn_tensor* gn_sum_dim(const gn_tensor* t, int32_t dim, int32_t keep_dim) {
    return tensor_op([&]() { return at::sum(val(t), {static_cast<int64_t>(dim)}, keep_dim != 0); });
}

gn_tensor* gn_max_dim(const gn_tensor* t, int32_t dim, int32_t keep_dim) {
    return tensor_op([&]() { return std::get<0>(at::max(val(t), dim, keep_dim != 0)); });
}

gn_tensor* gn_argmax_dim(const gn_tensor* t, int32_t dim) {
    return tensor_op([&]() { return at::argmax(val(t), static_cast<int64_t>(dim), false).to(at::kInt); });
}

// ---- linear algebra and convolution ----

gn_tensor* gn_matmul(const gn_tensor* a, const gn_tensor* b, int32_t trans_a, int32_t trans_b) {
    return tensor_op([&]() {
        const auto& x = val(a);
        const auto& y = val(b);
        return at::mm(trans_a ? x.t() : x, trans_b ? y.t() : y);
    });
}

// Columns [C·kh·kw, N·oh·ow]: ATen's im2col gives [N, C·kh·kw, oh·ow].
gn_tensor* gn_unfold2d(const gn_tensor* x, int32_t kh, int32_t kw, int32_t sh, int32_t sw, int32_t ph, int32_t pw) {
    return tensor_op([&]() {
        const auto& v = val(x);
        auto cols = at::im2col(v, {kh, kw}, {1, 1}, {ph, pw}, {sh, sw});
        return cols.permute({1, 0, 2}).reshape({cols.size(1), cols.size(0) * cols.size(2)});
    });
}

gn_tensor* gn_fold2d(const gn_tensor* cols, const int32_t* out_shape4, int32_t kh, int32_t kw, int32_t sh, int32_t sw, int32_t ph, int32_t pw) {
    return tensor_op([&]() {
        const auto& c = val(cols);
        const int64_t n = out_shape4[0];
        auto batched = c.reshape({c.size(0), n, c.size(1) / n}).permute({1, 0, 2}).contiguous();
        return at::col2im(batched, {out_shape4[2], out_shape4[3]}, {kh, kw}, {1, 1}, {ph, pw}, {sh, sw});
    });
}

gn_tensor* gn_conv2d(const gn_tensor* x, const gn_tensor* w, int32_t sh, int32_t sw, int32_t ph, int32_t pw) {
    return tensor_op([&]() { return at::conv2d(val(x), val(w), {}, {sh, sw}, {ph, pw}); });
}

gn_tensor* gn_conv2d_input_grad(const gn_tensor* g, const gn_tensor* w, const int32_t* x_shape4, int32_t sh, int32_t sw, int32_t ph, int32_t pw) {
    return tensor_op([&]() {
        const auto& gg = val(g);
        // only the input's shape is read for this gradient
        auto x = at::empty(dims(x_shape4, 4), gg.options());
        auto r = at::convolution_backward(gg, x, val(w), no_bias(), {sh, sw}, {ph, pw}, {1, 1}, false, {0, 0}, 1,
                                          {true, false, false});
        return std::get<0>(r);
    });
}

gn_tensor* gn_conv2d_weight_grad(const gn_tensor* x, const gn_tensor* g, const int32_t* w_shape4, int32_t sh, int32_t sw, int32_t ph, int32_t pw) {
    return tensor_op([&]() {
        const auto& xx = val(x);
        // only the weight's shape is read for this gradient
        auto w = at::empty(dims(w_shape4, 4), xx.options());
        auto r = at::convolution_backward(val(g), xx, w, no_bias(), {sh, sw}, {ph, pw}, {1, 1}, false, {0, 0}, 1,
                                          {false, true, false});
        return std::get<1>(r);
    });
}

gn_tensor* gn_maxpool2d_indices(const gn_tensor* x, int32_t k, int32_t s, int32_t p) {
    return tensor_op([&]() {
        const auto& v = val(x);
        auto idx = std::get<1>(at::max_pool2d_with_indices(v, {k, k}, {s, s}, {p, p}));
        // ATen's indices count within one [H, W] plane; ours count within the whole tensor
        const int64_t planes = v.size(0) * v.size(1);
        auto offsets = at::arange(planes, idx.options()).mul_(v.size(2) * v.size(3)).view({v.size(0), v.size(1), 1, 1});
        return (idx + offsets).to(at::kInt);
    });
}

// ---- indexing ----

gn_tensor* gn_one_hot(const gn_tensor* idx, int32_t n, int32_t dtype) {
    return tensor_op([&]() { return at::one_hot(val(idx).to(at::kLong), n).to(scalar_type(dtype)); });
}

gn_tensor* gn_gather(const gn_tensor* t, int32_t dim, const gn_tensor* idx) {
    return tensor_op([&]() { return at::gather(val(t), dim, val(idx).to(at::kLong)); });
}

gn_tensor* gn_scatter_add(const gn_tensor* src, int32_t dim, const gn_tensor* idx, const int32_t* out_shape, int32_t rank) {
    return tensor_op([&]() {
        const auto& s = val(src);
        auto out = at::zeros(dims(out_shape, rank), s.options());
        out.scatter_add_(dim, val(idx).to(at::kLong), s);
        return out;
    });
}

}  // extern "C"
