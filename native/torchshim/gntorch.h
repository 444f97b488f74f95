/* GroupedNewton's libtorch shim: a flat C interface over the raw ATen kernels that the
 * library's Backend interface needs. No autograd: the library differentiates by itself.
 *
 * Conventions
 *  - A tensor crosses the interface as an opaque gn_tensor*; every one returned by a
 *    function here is owned by the caller and released with gn_free (exactly once).
 *  - Shapes, permutations and offsets are (const int32_t*, rank) pairs.
 *  - dtype codes: 0 float32, 1 float64, 2 int32. device: type 0 cpu, 1 cuda, plus an index.
 *  - No C++ exception crosses the interface. A function that fails returns NULL (or -1)
 *    and leaves a message readable with gn_last_error on the calling thread.
 */
#ifndef GNTORCH_H
#define GNTORCH_H

#include <stdint.h>

#if defined(_WIN32)
#define GN_API __declspec(dllexport)
#else
#define GN_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gn_tensor gn_tensor;

/* ---- library ---- */
GN_API const char* gn_last_error(void);      /* NULL when the last call on this thread succeeded */
GN_API int32_t gn_abi_version(void);
GN_API int64_t gn_live_tensors(void);         /* handles created and not yet freed */
GN_API int32_t gn_cuda_device_count(void);
GN_API void gn_set_num_threads(int32_t n);
GN_API int32_t gn_get_num_threads(void);
/* The libtorch version the shim was compiled against, "major.minor.patch". */
GN_API const char* gn_torch_version(void);
/* Waits until every kernel queued on the device has finished (a no-op on the CPU); 0 on success. */
GN_API int32_t gn_synchronize(int32_t dev_type, int32_t dev_index);
/* Lets float32 matrix products and convolutions on CUDA use TF32 (1) or not (0; the
 * default the shim sets when it loads: full float32 precision, as on the CPU). */
GN_API int32_t gn_set_allow_tf32(int32_t allow);

/* ---- handles and data ---- */
GN_API void gn_free(gn_tensor* t);
/* Writes up to `cap` dimensions into `shape` and the dtype code into `dtype`; returns the rank. */
GN_API int32_t gn_meta(const gn_tensor* t, int32_t* shape, int32_t cap, int32_t* dtype);
GN_API gn_tensor* gn_zeros(const int32_t* shape, int32_t rank, int32_t dtype, int32_t dev_type, int32_t dev_index);
GN_API gn_tensor* gn_full(const int32_t* shape, int32_t rank, double value, int32_t dtype, int32_t dev_type, int32_t dev_index);
/* Copies numel(shape) elements of `dtype` from host memory. */
GN_API gn_tensor* gn_from_data(const void* data, const int32_t* shape, int32_t rank, int32_t dtype, int32_t dev_type, int32_t dev_index);
/* Copies the row-major values into host memory of exactly `bytes` bytes; 0 on success. */
GN_API int32_t gn_to_data(const gn_tensor* t, void* out, int64_t bytes);
GN_API gn_tensor* gn_to_device(const gn_tensor* t, int32_t dev_type, int32_t dev_index);
GN_API gn_tensor* gn_cast(const gn_tensor* t, int32_t dtype);

/* ---- layout ---- */
GN_API gn_tensor* gn_view(const gn_tensor* t, const int32_t* shape, int32_t rank);
GN_API gn_tensor* gn_permute(const gn_tensor* t, const int32_t* perm, int32_t rank);
GN_API gn_tensor* gn_expand(const gn_tensor* t, const int32_t* shape, int32_t rank);
GN_API gn_tensor* gn_slice(const gn_tensor* t, const int32_t* starts, const int32_t* lengths, int32_t rank);
GN_API gn_tensor* gn_pad(const gn_tensor* t, const int32_t* starts, const int32_t* out_shape, int32_t rank);
GN_API gn_tensor* gn_cat(const gn_tensor* const* ts, int32_t count, int32_t dim);

/* ---- elementwise ----
 * unary kinds: 0 neg, 1 exp, 2 log, 3 tanh, 4 sigmoid, 5 softplus, 6 relu, 7 sqrt, 8 abs, 9 sign
 * binary kinds: 0 add, 1 sub, 2 mul, 3 div */
GN_API gn_tensor* gn_unary(int32_t kind, const gn_tensor* t);
GN_API gn_tensor* gn_binary(int32_t kind, const gn_tensor* a, const gn_tensor* b);
GN_API gn_tensor* gn_add_scaled(const gn_tensor* a, const gn_tensor* b, double beta);
GN_API gn_tensor* gn_tanh_grad(const gn_tensor* y, const gn_tensor* t);
GN_API gn_tensor* gn_add_scalar(const gn_tensor* t, double c);
GN_API gn_tensor* gn_mul_scalar(const gn_tensor* t, double c);
GN_API gn_tensor* gn_pow_scalar(const gn_tensor* t, double c);
GN_API gn_tensor* gn_gt_scalar(const gn_tensor* t, double c);

/* ---- reductions ---- */
GN_API gn_tensor* gn_sum(const gn_tensor* t);
GN_API gn_tensor* gn_sum_dim(const gn_tensor* t, int32_t dim, int32_t keep_dim);
GN_API gn_tensor* gn_max_dim(const gn_tensor* t, int32_t dim, int32_t keep_dim);
GN_API gn_tensor* gn_argmax_dim(const gn_tensor* t, int32_t dim);

/* ---- linear algebra and convolution ---- */
GN_API gn_tensor* gn_matmul(const gn_tensor* a, const gn_tensor* b, int32_t trans_a, int32_t trans_b);
GN_API gn_tensor* gn_unfold2d(const gn_tensor* x, int32_t kh, int32_t kw, int32_t sh, int32_t sw, int32_t ph, int32_t pw);
GN_API gn_tensor* gn_fold2d(const gn_tensor* cols, const int32_t* out_shape4, int32_t kh, int32_t kw, int32_t sh, int32_t sw, int32_t ph, int32_t pw);
GN_API gn_tensor* gn_conv2d(const gn_tensor* x, const gn_tensor* w, int32_t sh, int32_t sw, int32_t ph, int32_t pw);
GN_API gn_tensor* gn_conv2d_input_grad(const gn_tensor* g, const gn_tensor* w, const int32_t* x_shape4, int32_t sh, int32_t sw, int32_t ph, int32_t pw);
GN_API gn_tensor* gn_conv2d_weight_grad(const gn_tensor* x, const gn_tensor* g, const int32_t* w_shape4, int32_t sh, int32_t sw, int32_t ph, int32_t pw);
/* int32 flat indices into x (viewed as a vector) of each window's first maximum. */
GN_API gn_tensor* gn_maxpool2d_indices(const gn_tensor* x, int32_t k, int32_t s, int32_t p);

/* ---- indexing (index tensors are int32) ---- */
GN_API gn_tensor* gn_one_hot(const gn_tensor* idx, int32_t n, int32_t dtype);
GN_API gn_tensor* gn_gather(const gn_tensor* t, int32_t dim, const gn_tensor* idx);
GN_API gn_tensor* gn_scatter_add(const gn_tensor* src, int32_t dim, const gn_tensor* idx, const int32_t* out_shape, int32_t rank);

#ifdef __cplusplus
}
#endif

#endif
