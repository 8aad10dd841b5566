/* Image files (libjpeg-turbo, libpng) and the UTKFace / ImageNet folder
 * datasets; conventions in include/fixgrid/image.h. libjpeg reports errors
 * through a longjmp out of its error_exit, so each decode keeps its own
 * jmp_buf and frees what it holds on the way out; its warnings (premature
 * end of file, corrupt data) are errors here, since a silently grey-filled
 * image would train on garbage. */
#include "fixgrid/image.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <jpeglib.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- decoding ---- */
typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
} jerr;

static void jerr_exit(j_common_ptr cinfo)
{
    jerr *e = (jerr *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->msg);
    longjmp(e->jump, 1);
}

/* A warning (msg_level -1) ends the decode like an error. */
static void jerr_emit(j_common_ptr cinfo, int level)
{
    if (level < 0) jerr_exit(cinfo);
}

static int decode_jpeg(const char *path, const unsigned char *buf, size_t len,
                       unsigned char **pix, int *h, int *w)
{
    struct jpeg_decompress_struct ci;
    jerr e;
    unsigned char *volatile out = NULL, *volatile line = NULL;
    ci.err = jpeg_std_error(&e.pub);
    e.pub.error_exit = jerr_exit;
    e.pub.emit_message = jerr_emit;
    jpeg_create_decompress(&ci);
    if (setjmp(e.jump)) {
        jpeg_destroy_decompress(&ci);
        free(out);
        free(line);
        int trunc = strstr(e.msg, "Premature end") != NULL;
        return fg_err(FG_ERR_FORMAT, "%s: %s%s", path, trunc ? "JPEG data ends early (truncated or corrupt): " : "JPEG: ",
                      e.msg);
    }
    jpeg_mem_src(&ci, buf, (unsigned long)len);
    jpeg_read_header(&ci, TRUE);
    /* CMYK/YCCK files (a few in ImageNet's train set) come out as CMYK and
     * are converted below; the rest as RGB, as PIL's convert("RGB") */
    int cmyk = ci.jpeg_color_space == JCS_CMYK || ci.jpeg_color_space == JCS_YCCK;
    ci.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    jpeg_start_decompress(&ci);
    int W = (int)ci.output_width, H = (int)ci.output_height;
    out = fg_xmalloc((size_t)W * (size_t)H * 3);
    if (cmyk) line = fg_xmalloc((size_t)W * 4);
    while (ci.output_scanline < ci.output_height) {
        unsigned char *dst = out + (size_t)ci.output_scanline * (size_t)W * 3;
        JSAMPROW row = cmyk ? line : dst;
        jpeg_read_scanlines(&ci, &row, 1);
        /* Pillow's cmyk2rgb: R = (255 - K) - (C (255 - K)) / 255 with its
         * MULDIV255 rounding; Adobe files store the inks inverted */
        for (int x = 0; cmyk && x < W; x++) {
            const unsigned char *q = line + 4 * x;
            int inv = ci.saw_Adobe_marker, k = inv ? 255 - q[3] : q[3], nk = 255 - k;
            for (int ch = 0; ch < 3; ch++) {
                int c = inv ? 255 - q[ch] : q[ch], t = c * nk + 128;
                int v = nk - (((t >> 8) + t) >> 8);
                dst[3 * x + ch] = (unsigned char)(v < 0 ? 0 : v);
            }
        }
    }
    free(line);
    line = NULL;
    jpeg_finish_decompress(&ci);
    jpeg_destroy_decompress(&ci);
    *pix = out;
    *h = H;
    *w = W;
    return FG_OK;
}

static int decode_png(const char *path, const unsigned char *buf, size_t len,
                      unsigned char **pix, int *h, int *w)
{
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&im, buf, len))
        return fg_err(FG_ERR_FORMAT, "%s: PNG: %s", path, im.message);
    /* RGBA, then the alpha dropped (not composited), as PIL's convert("RGB");
     * palettes and grayscale are expanded by libpng */
    im.format = PNG_FORMAT_RGBA;
    size_t size = PNG_IMAGE_SIZE(im), npx = (size_t)im.width * (size_t)im.height;
    unsigned char *out = fg_xmalloc(size ? size : 1);
    if (png_image_finish_read(&im, NULL, out, 0, NULL)) {
        for (size_t i = 0; i < npx; i++)
            memmove(out + 3 * i, out + 4 * i, 3);
    } else {
        int rc = fg_err(FG_ERR_FORMAT, "%s: PNG: %s", path, im.message);
        free(out);
        png_image_free(&im);
        return rc;
    }
    *pix = out;
    *h = (int)im.height;
    *w = (int)im.width;
    png_image_free(&im);
    return FG_OK;
}

int fg_image_decode(const char *path, unsigned char **pix, int *h, int *w)
{
    *pix = NULL;
    *h = *w = 0;
    char *buf = NULL;
    size_t len = 0;
    int rc = fg_file_read(path, &buf, &len);
    if (rc != FG_OK) return rc;
    const unsigned char *b = (const unsigned char *)buf;
    static const unsigned char png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (len >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff)
        rc = decode_jpeg(path, b, len, pix, h, w);
    else if (len >= 8 && memcmp(b, png_magic, 8) == 0)
        rc = decode_png(path, b, len, pix, h, w);
    else
        rc = fg_err(FG_ERR_FORMAT, "%s: not a JPEG or PNG file (%zu bytes, no JPEG/PNG magic)",
                    path, len);
    free(buf);
    return rc;
}

int fg_image_write_jpeg(const char *path, const unsigned char *pix, int h, int w, int quality)
{
    FILE *f = fopen(path, "wb");
    if (!f) return fg_err(FG_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    struct jpeg_compress_struct ci;
    jerr e;
    ci.err = jpeg_std_error(&e.pub);
    e.pub.error_exit = jerr_exit;
    jpeg_create_compress(&ci);
    if (setjmp(e.jump)) {
        jpeg_destroy_compress(&ci);
        fclose(f);
        return fg_err(FG_ERR_IO, "%s: JPEG: %s", path, e.msg);
    }
    jpeg_stdio_dest(&ci, f);
    ci.image_width = (JDIMENSION)w;
    ci.image_height = (JDIMENSION)h;
    ci.input_components = 3;
    ci.in_color_space = JCS_RGB;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, quality, TRUE);
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = (JSAMPROW)(pix + (size_t)ci.next_scanline * (size_t)w * 3);
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    if (fclose(f) != 0) return fg_err(FG_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    return FG_OK;
}

/* ---- resizing (Pillow's ImagingResample with the bilinear filter) ---- */
typedef struct {
    int *lo, *n;    /* per output pixel: first input pixel and count */
    double *k;      /* per output pixel: n weights, at stride ksize */
    int ksize;
} coeffs;

static double triangle(double x)
{
    if (x < 0) x = -x;
    return x < 1 ? 1 - x : 0;
}

static void make_coeffs(int in, int out, coeffs *c)
{
    double scale = (double)in / out, fscale = scale > 1 ? scale : 1, support = fscale;
    c->ksize = (int)ceil(support) * 2 + 1;
    c->lo = fg_xmalloc(sizeof(int) * (size_t)out);
    c->n = fg_xmalloc(sizeof(int) * (size_t)out);
    c->k = fg_xcalloc((size_t)out * (size_t)c->ksize, sizeof(double));
    for (int i = 0; i < out; i++) {
        double centre = (i + 0.5) * scale, ss = 1.0 / fscale;
        int lo = (int)(centre - support + 0.5), hi = (int)(centre + support + 0.5);
        if (lo < 0) lo = 0;
        if (hi > in) hi = in;
        int n = hi - lo;
        if (n > c->ksize) n = c->ksize;
        double sum = 0, *k = c->k + (size_t)i * (size_t)c->ksize;
        for (int j = 0; j < n; j++) {
            k[j] = triangle((j + lo - centre + 0.5) * ss);
            sum += k[j];
        }
        for (int j = 0; j < n && sum != 0; j++)
            k[j] /= sum;
        c->lo[i] = lo;
        c->n[i] = n;
    }
}

static void free_coeffs(coeffs *c)
{
    free(c->lo);
    free(c->n);
    free(c->k);
}

enum { FIX_BITS = 32 - 8 - 2 }; /* Pillow's PRECISION_BITS */

void fg_image_resize(const unsigned char *src, int h, int w, int c, int oh, int ow, float *dst)
{
    /* Horizontal pass to 8 bits (skipped when the width stays, as Pillow does). */
    unsigned char *mid = NULL;
    const unsigned char *hsrc = src;
    if (ow != w) {
        coeffs cx;
        make_coeffs(w, ow, &cx);
        mid = fg_xmalloc((size_t)h * (size_t)ow * (size_t)c);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < ow; x++) {
                const double *k = cx.k + (size_t)x * (size_t)cx.ksize;
                for (int ch = 0; ch < c; ch++) {
                    /* Pillow's 8-bit arithmetic: weights in 22-bit fixed point,
                     * half added, shifted down; ties then fall as Pillow's do */
                    long long v = 1LL << (FIX_BITS - 1);
                    for (int j = 0; j < cx.n[x]; j++)
                        v += (long long)(0.5 + k[j] * (double)(1LL << FIX_BITS)) *
                             src[((size_t)y * (size_t)w + (size_t)(cx.lo[x] + j)) * (size_t)c + (size_t)ch];
                    v >>= FIX_BITS;
                    mid[((size_t)y * (size_t)ow + (size_t)x) * (size_t)c + (size_t)ch] =
                        (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
                }
            }
        free_coeffs(&cx);
        hsrc = mid;
    }
    /* Vertical pass, kept in float, written planar. */
    coeffs cy;
    make_coeffs(h, oh, &cy);
    size_t plane = (size_t)oh * (size_t)ow;
    for (int y = 0; y < oh; y++) {
        const double *k = cy.k + (size_t)y * (size_t)cy.ksize;
        for (int x = 0; x < ow; x++)
            for (int ch = 0; ch < c; ch++) {
                double v = 0;
                if (oh == h) {
                    v = hsrc[((size_t)y * (size_t)ow + (size_t)x) * (size_t)c + (size_t)ch];
                } else {
                    for (int j = 0; j < cy.n[y]; j++)
                        v += k[j] * hsrc[((size_t)(cy.lo[y] + j) * (size_t)ow + (size_t)x) * (size_t)c + (size_t)ch];
                    v = v < 0 ? 0 : v > 255 ? 255 : v;
                }
                dst[(size_t)ch * plane + (size_t)y * (size_t)ow + (size_t)x] = (float)v;
            }
    }
    free_coeffs(&cy);
    free(mid);
}

/* Pillow's ImagingScaleAffine: x0 = scale / 2, then += scale per pixel */
static void nearest_index(int in, int out, int *idx)
{
    double scale = (double)in / out, xo = scale * 0.5;
    for (int i = 0; i < out; i++, xo += scale) {
        int v = xo < 0 ? -1 : (int)xo;
        idx[i] = v < 0 ? 0 : v >= in ? in - 1 : v;
    }
}

void fg_image_resize_nearest(const unsigned char *src, int h, int w, int c, int oh, int ow,
                             float *dst)
{
    int *ix = fg_xmalloc(sizeof(int) * (size_t)ow), *iy = fg_xmalloc(sizeof(int) * (size_t)oh);
    nearest_index(w, ow, ix);
    nearest_index(h, oh, iy);
    size_t plane = (size_t)oh * (size_t)ow;
    for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++)
            for (int ch = 0; ch < c; ch++)
                dst[(size_t)ch * plane + (size_t)y * (size_t)ow + (size_t)x] =
                    src[((size_t)iy[y] * (size_t)w + (size_t)ix[x]) * (size_t)c + (size_t)ch];
    free(ix);
    free(iy);
}

/* round(d / 2) with ties to even, as Python's round in torchvision's CenterCrop */
static int half_even(int d)
{
    int f = d / 2;
    if (d % 2 == 0) return f;
    return (f % 2 == 0) ? f : f + 1;
}

int fg_image_load(const char *path, const fg_image_prep *p, float *x)
{
    unsigned char *pix = NULL;
    int h, w;
    int rc = fg_image_decode(path, &pix, &h, &w);
    if (rc != FG_OK) return rc;
    int rh = p->out_h, rw = p->out_w;
    if (p->resize_short > 0) {
        int s = p->resize_short;
        if (h <= w) {
            rh = s;
            rw = (int)((long long)s * w / h);
        } else {
            rw = s;
            rh = (int)((long long)s * h / w);
        }
        if (rh < p->out_h || rw < p->out_w) {
            free(pix);
            return fg_err(FG_ERR_ARG, "%s: resized to %dx%d, smaller than the %dx%d crop", path,
                          rh, rw, p->out_h, p->out_w);
        }
    }
    float *r = x;
    if (rh != p->out_h || rw != p->out_w) r = fg_xfloats((size_t)3 * (size_t)rh * (size_t)rw);
    if (p->nearest)
        fg_image_resize_nearest(pix, h, w, 3, rh, rw, r);
    else
        fg_image_resize(pix, h, w, 3, rh, rw, r);
    free(pix);
    if (r != x) {
        int top = half_even(rh - p->out_h), left = half_even(rw - p->out_w);
        for (int ch = 0; ch < 3; ch++)
            for (int y = 0; y < p->out_h; y++)
                memcpy(x + ((size_t)ch * (size_t)p->out_h + (size_t)y) * (size_t)p->out_w,
                       r + ((size_t)ch * (size_t)rh + (size_t)(y + top)) * (size_t)rw + (size_t)left,
                       sizeof(float) * (size_t)p->out_w);
        free(r);
    }
    size_t m = (size_t)3 * (size_t)p->out_h * (size_t)p->out_w;
    for (size_t i = 0; i < m; i++)
        x[i] /= 255.0f;
    return FG_OK;
}

/* ---- folder datasets ---- */
void fg_image_list_free(fg_image_list *l)
{
    if (!l) return;
    for (int i = 0; i < l->n; i++)
        free(l->paths[i]);
    free(l->paths);
    free(l->y);
    free(l->group);
    memset(l, 0, sizeof *l);
}

typedef struct {
    char **s;
    int n, cap;
} strvec;

static void sv_push(strvec *v, const char *s)
{
    if (v->n == v->cap) {
        v->cap = v->cap ? 2 * v->cap : 64;
        v->s = fg_xrealloc(v->s, sizeof(char *) * (size_t)v->cap);
    }
    v->s[v->n++] = fg_xstrdup(s);
}

static void sv_free(strvec *v)
{
    for (int i = 0; i < v->n; i++)
        free(v->s[i]);
    free(v->s);
    memset(v, 0, sizeof *v);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int ends_with_ci(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcasecmp(s + n - m, suf) == 0;
}

static int is_image_name(const char *s)
{
    return ends_with_ci(s, ".jpg") || ends_with_ci(s, ".jpeg") || ends_with_ci(s, ".png");
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Sorted names in dir passing keep (files, or folders when dirs). */
static int list_dir(const char *dir, int dirs, strvec *out)
{
    memset(out, 0, sizeof *out);
    DIR *d = opendir(dir);
    if (!d) return fg_err(FG_ERR_NOTFOUND, "%s: cannot open folder: %s", dir, strerror(errno));
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        int isd = is_dir(path);
        if (dirs ? isd : (!isd && is_image_name(e->d_name))) sv_push(out, e->d_name);
    }
    closedir(d);
    if (out->n) qsort(out->s, (size_t)out->n, sizeof(char *), cmp_str);
    return FG_OK;
}

static char *join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *s = fg_xmalloc(n);
    snprintf(s, n, "%s/%s", a, b);
    return s;
}

/* Parse a run of digits at *p; -1 when there is none. */
static long digits(const char **p)
{
    if (!isdigit((unsigned char)**p)) return -1;
    long v = 0;
    while (isdigit((unsigned char)**p)) {
        if (v < 100000000000000000L) v = v * 10 + (**p - '0');
        (*p)++;
    }
    return v;
}

/* "AGE_GENDER_RACE_DATE.jpg" or "...jpg.chip.jpg": gender, race; -1 if malformed. */
static int utk_parse(const char *name, int *gender, int *race)
{
    const char *p = name;
    long age = digits(&p);
    if (age < 0 || *p++ != '_') return -1;
    long g = digits(&p);
    if (g < 0 || *p++ != '_') return -1;
    long r = digits(&p);
    if (r < 0 || *p++ != '_') return -1;
    if (digits(&p) < 0) return -1;
    if (strcasecmp(p, ".jpg") != 0 && strcasecmp(p, ".jpg.chip.jpg") != 0) return -1;
    *gender = (int)g;
    *race = (int)r;
    return 0;
}

int fg_utkface_list(const char *dir, fg_image_list *out)
{
    memset(out, 0, sizeof *out);
    strvec names;
    int rc = list_dir(dir, 0, &names);
    if (rc != FG_OK) return rc;
    if (names.n == 0) {
        sv_free(&names);
        return fg_err(FG_ERR_NOTFOUND, "%s: no .jpg files (UTKFace images go here)", dir);
    }
    out->paths = fg_xcalloc((size_t)names.n, sizeof(char *));
    out->y = fg_xmalloc(sizeof(int) * (size_t)names.n);
    out->group = fg_xmalloc(sizeof(int) * (size_t)names.n);
    out->n_classes = 2;
    out->n_groups = 2;
    for (int i = 0; i < names.n; i++) {
        int g, r;
        if (utk_parse(names.s[i], &g, &r) != 0) {
            rc = fg_err(FG_ERR_FORMAT,
                        "%s/%s: not a UTKFace name (age_gender_race_date.jpg; the set's three "
                        "files without a race field must be removed, as the study's 23,705 did)",
                        dir, names.s[i]);
            goto cleanup;
        }
        if (g > 1 || r > 4) {
            rc = fg_err(FG_ERR_FORMAT, "%s/%s: UTKFace name has gender %d (0 or 1) and race %d "
                        "(0 to 4)", dir, names.s[i], g, r);
            goto cleanup;
        }
        out->paths[out->n] = join(dir, names.s[i]);
        out->y[out->n] = g;
        out->group[out->n] = r == 0 ? 0 : 1; /* white vs non-white */
        out->n++;
    }
cleanup:
    sv_free(&names);
    if (rc != FG_OK) fg_image_list_free(out);
    return rc;
}

static int is_synset(const char *s, size_t n)
{
    if (n != 9 || s[0] != 'n') return 0;
    for (size_t i = 1; i < 9; i++)
        if (!isdigit((unsigned char)s[i])) return 0;
    return 1;
}

static int synset_index(const strvec *cls, const char *syn)
{
    const char *key = syn;
    char **hit = bsearch(&key, cls->s, (size_t)cls->n, sizeof(char *), cmp_str);
    return hit ? (int)(hit - cls->s) : -1;
}

static void push_row(fg_image_list *l, int *cap, char *path, int y)
{
    if (l->n == *cap) {
        *cap = *cap ? 2 * *cap : 256;
        l->paths = fg_xrealloc(l->paths, sizeof(char *) * (size_t)*cap);
        l->y = fg_xrealloc(l->y, sizeof(int) * (size_t)*cap);
    }
    l->paths[l->n] = path;
    l->y[l->n++] = y;
}

static int imagenet_flat(const strvec *cls, const char *dir, const char *labels, fg_image_list *out,
                         int *cap)
{
    FILE *f = fopen(labels, "r");
    if (!f) return fg_err(FG_ERR_NOTFOUND, "%s: cannot open: %s", labels, strerror(errno));
    char line[8192];
    int rc = FG_OK;
    for (int ln = 1; fgets(line, sizeof line, f); ln++) {
        char *s = line;
        while (*s == ' ' || *s == '\t') s++;
        size_t nl = strcspn(s, "\r\n");
        s[nl] = 0;
        if (!*s) continue;
        size_t nlen = strcspn(s, ", \t");
        if (ln == 1 && nlen == 7 && strncmp(s, "ImageId", 7) == 0) continue; /* Kaggle's header */
        const char *syn = NULL;
        for (char *p = s + nlen; *p; p++)
            if (*p == 'n' && (p == s || strchr(", \t", p[-1])) && is_synset(p, strcspn(p, ", \t"))) {
                syn = p;
                break;
            }
        if (!syn) {
            rc = fg_err(FG_ERR_FORMAT, "%s:%d: no synset (nXXXXXXXX) after the image name", labels,
                        ln);
            break;
        }
        char sy[10];
        memcpy(sy, syn, 9);
        sy[9] = 0;
        int y = synset_index(cls, sy);
        if (y < 0) {
            rc = fg_err(FG_ERR_FORMAT, "%s:%d: synset %s is not a class folder of the train set",
                        labels, ln, sy);
            break;
        }
        s[nlen] = 0;
        char *path = join(dir, s);
        if (!is_image_name(s) || access(path, R_OK) != 0) {
            char *alt = fg_xmalloc(strlen(path) + 6);
            sprintf(alt, "%s.JPEG", path);
            free(path);
            path = alt;
        }
        if (access(path, R_OK) != 0) {
            rc = fg_err(FG_ERR_NOTFOUND, "%s:%d: image %s not found in %s", labels, ln, s, dir);
            free(path);
            break;
        }
        push_row(out, cap, path, y);
    }
    fclose(f);
    return rc;
}

int fg_imagenet_list(const char *class_dir, const char *dir, const char *labels,
                     fg_image_list *out)
{
    memset(out, 0, sizeof *out);
    strvec cls, files = {0};
    int rc = list_dir(class_dir, 1, &cls), cap = 0;
    if (rc != FG_OK) return rc;
    for (int i = 0; i < cls.n; i++)
        if (!is_synset(cls.s[i], strlen(cls.s[i]))) {
            rc = fg_err(FG_ERR_FORMAT, "%s/%s: not a synset folder (nXXXXXXXX)", class_dir,
                        cls.s[i]);
            goto cleanup;
        }
    if (cls.n < 2) {
        rc = fg_err(FG_ERR_NOTFOUND, "%s: %d synset folders (nXXXXXXXX/), need 2 at least",
                    class_dir, cls.n);
        goto cleanup;
    }
    out->n_classes = cls.n;
    if (labels) {
        rc = imagenet_flat(&cls, dir, labels, out, &cap);
        goto cleanup;
    }
    strvec sub;
    rc = list_dir(dir, 1, &sub);
    if (rc != FG_OK) goto cleanup;
    for (int i = 0; i < sub.n && rc == FG_OK; i++) {
        int y = synset_index(&cls, sub.s[i]);
        if (y < 0) {
            rc = fg_err(FG_ERR_FORMAT, "%s/%s: not one of the %d class folders of %s", dir,
                        sub.s[i], cls.n, class_dir);
            break;
        }
        char *sd = join(dir, sub.s[i]);
        rc = list_dir(sd, 0, &files);
        for (int j = 0; j < files.n && rc == FG_OK; j++)
            push_row(out, &cap, join(sd, files.s[j]), y);
        sv_free(&files);
        free(sd);
    }
    sv_free(&sub);
    if (rc == FG_OK && out->n == 0)
        rc = fg_err(FG_ERR_NOTFOUND, "%s: no images in its synset folders", dir);
cleanup:
    sv_free(&cls);
    sv_free(&files);
    if (rc != FG_OK) fg_image_list_free(out);
    return rc;
}

int fg_image_list_decode(const fg_image_list *l, const fg_image_prep *p, const int *idx, int n,
                         float *x)
{
    size_t dim = (size_t)3 * (size_t)p->out_h * (size_t)p->out_w;
    for (int i = 0; i < n; i++) {
        int rc = fg_image_load(l->paths[idx[i]], p, x + (size_t)i * dim);
        if (rc != FG_OK) return rc;
    }
    return FG_OK;
}

size_t fg_image_memory_limit(void)
{
    const char *e = getenv("FIXGRID_DATA_MAX_BYTES");
    if (e && *e) return (size_t)strtoull(e, NULL, 10);
    e = getenv("SLURM_MEM_PER_NODE");
    if (e && *e) return (size_t)strtoull(e, NULL, 10) * 1024 * 1024 / 2;
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
    return pages > 0 && psize > 0 ? (size_t)pages * (size_t)psize / 2 : 0;
}

int fg_image_list_load(const fg_image_list *l, const fg_image_prep *p, size_t max_bytes,
                       const char *root, fg_dataset *out)
{
    memset(out, 0, sizeof *out);
    size_t dim = (size_t)3 * (size_t)p->out_h * (size_t)p->out_w;
    double need = (double)l->n * (double)dim * sizeof(float);
    if (max_bytes && need > (double)max_bytes)
        return fg_err(FG_ERR_ARG,
                      "%s: %d images of 3x%dx%d need %.2f GiB as float32, over the %.2f GiB this "
                      "job may hold (FIXGRID_DATA_MAX_BYTES, SLURM_MEM_PER_NODE / 2 or half the "
                      "node's memory); this loader holds a pool in memory",
                      root, l->n, p->out_h, p->out_w, need / 1073741824.0,
                      (double)max_bytes / 1073741824.0);
    out->n = l->n;
    out->c = 3;
    out->h = p->out_h;
    out->w = p->out_w;
    out->n_classes = l->n_classes;
    out->n_groups = l->group ? l->n_groups : 0;
    out->x = fg_xfloats(dim * (size_t)(l->n > 0 ? l->n : 1));
    out->y = fg_xmalloc(sizeof(int) * (size_t)(l->n > 0 ? l->n : 1));
    memcpy(out->y, l->y, sizeof(int) * (size_t)l->n);
    if (l->group) {
        out->group = fg_xmalloc(sizeof(int) * (size_t)(l->n > 0 ? l->n : 1));
        memcpy(out->group, l->group, sizeof(int) * (size_t)l->n);
    }
    for (int i = 0; i < l->n; i++) {
        int rc = fg_image_load(l->paths[i], p, out->x + (size_t)i * dim);
        if (rc != FG_OK) {
            fg_dataset_free(out);
            return rc;
        }
    }
    return FG_OK;
}
