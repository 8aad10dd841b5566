/* image: JPEG and PNG files as model inputs, and the two image-folder
 * datasets of the study (UTKFace, ImageNet). The only module that sees
 * libjpeg-turbo's jpeglib.h and libpng's png.h (Debian's
 * libjpeg62-turbo-dev, libpng-dev).
 *
 * Pixels: a decoded image is 8-bit, h x w x c interleaved (c = 3; grayscale
 * and palette files are expanded to RGB, alpha is dropped), as PIL's
 * Image.open(f).convert("RGB") gives it. Model inputs are floats, c x h x w,
 * raw / 255 (fg_subject_data applies scale and per-channel mean/std after).
 *
 * Resizing follows PIL's Image.resize(size, Image.BILINEAR) (Pillow >= 2.7,
 * the convention torchvision's Resize on PIL images uses): a separable
 * triangle filter whose support widens with the downscale factor
 * (antialiased), pixel centres at (i + 0.5) * in / out, horizontal pass
 * first, the intermediate rounded to 8 bits in Pillow's 22-bit fixed point
 * (so it equals Pillow's horizontal pass bit for bit); the final pass
 * is kept in float (no last rounding), so ours is within 0.5 / 255 of
 * Pillow's 8-bit result.
 *
 * Preprocessing (fg_image_prep): resize_short = 0 resizes to out_h x out_w
 * directly (the study's Keras ImageDataGenerator target_size); resize_short
 * = S resizes the shorter side to S and the longer to
 * floor(S * long / short) (torchvision Resize(S)), then crops out_h x out_w
 * from the centre, offsets round((in - out) / 2) with ties to even
 * (torchvision CenterCrop).
 *
 * Errors name the file: "PATH: not a JPEG or PNG file", "PATH: JPEG: <libjpeg's
 * message>", "PATH: JPEG data ends early (truncated or corrupt): ..." (libjpeg's
 * premature-end and corrupt-data warnings are errors here), "PATH: PNG: <libpng's message>", and for the folder
 * datasets "PATH: not a UTKFace name (age_gender_race_date.jpg)", and so on.
 * Nothing here exits; every error goes through fg_err.
 */
#ifndef FIXGRID_IMAGE_H
#define FIXGRID_IMAGE_H

#include "fixgrid/data.h"

#include <stddef.h>

/* Decode a JPEG or PNG file (by magic, not by name) to 8-bit RGB, h x w x 3
 * interleaved; *pix is malloc'd (caller frees). */
int fg_image_decode(const char *path, unsigned char **pix, int *h, int *w);

/* Bilinear resize (PIL's convention, see above) of an 8-bit h x w x c image to
 * oh x ow, written planar c x oh x ow as floats in [0, 255]. */
void fg_image_resize(const unsigned char *src, int h, int w, int c, int oh, int ow, float *dst);

/* Nearest-neighbour resize as Pillow's Image.resize(size, Image.NEAREST)
 * (Keras' load_img default): output pixel i reads input floor((i + 0.5) *
 * in / out), the coordinate accumulated as Pillow's ImagingScaleAffine does;
 * same layout as fg_image_resize, values exact. */
void fg_image_resize_nearest(const unsigned char *src, int h, int w, int c, int oh, int ow,
                             float *dst);

/* Write 8-bit RGB (h x w x 3 interleaved) as a baseline JPEG of the given
 * quality: the tests' files and nothing else. */
int fg_image_write_jpeg(const char *path, const unsigned char *pix, int h, int w, int quality);

typedef struct {
    int out_h, out_w;  /* the model's input size */
    int resize_short;  /* 0: resize straight to out_h x out_w; S: shorter side to S, centre crop */
    int nearest;       /* 1: nearest-neighbour resize instead of bilinear (see below) */
} fg_image_prep;

/* Decode, resize, crop: x receives 3 x out_h x out_w floats, raw / 255. */
int fg_image_load(const char *path, const fg_image_prep *p, float *x);

/* ---- image-folder datasets: an index of files, labels and groups ---- */
/* The index is cheap (a path per image); pixels are decoded from it in
 * batches (fg_image_list_decode), which is where a streaming dataset would
 * sit; fg_image_list_load decodes a whole list into a dataset after a size
 * check. */
typedef struct {
    int n;
    char **paths;   /* n malloc'd paths */
    int *y;         /* n labels in [0, n_classes) */
    int *group;     /* n group ids in [0, n_groups), or NULL */
    int n_classes, n_groups;
} fg_image_list;
void fg_image_list_free(fg_image_list *l);

/* UTKFace: every *.jpg in dir (sorted by name) is
 * "AGE_GENDER_RACE_DATE.jpg" (the aligned set adds ".chip.jpg"): label =
 * gender (0 male, 1 female), group = race 0 (white) -> 0, races 1-4 -> 1.
 * A name that does not parse, or a gender outside {0,1} or race outside
 * [0,4], is an error naming the file. Other files in dir are ignored. */
int fg_utkface_list(const char *dir, fg_image_list *out);

/* ImageNet (ILSVRC2012 as distributed): class_dir holds one folder per
 * synset (nXXXXXXXX), whose sorted order is the class index (the order of
 * torchvision's ImageFolder and Keras' flow_from_directory). dir is either
 * such a synset tree (train/, or val/ after the usual valprep script), or
 * flat (labels != NULL): every image named in the labels file, one line
 * per image "NAME<sep>...nXXXXXXXX..." where sep is a comma or white space
 * and the label is the first synset token after the name (Kaggle's
 * LOC_val_solution.csv with its header line, or "NAME nXXXXXXXX" lines);
 * NAME may omit the extension (.JPEG is tried). A synset unknown to
 * class_dir, a listed file that is missing, a line without a synset are
 * errors naming the file and line. */
int fg_imagenet_list(const char *class_dir, const char *dir, const char *labels,
                     fg_image_list *out);

/* Decode rows idx[0..n) of l into x (n x 3 x out_h x out_w). */
int fg_image_list_decode(const fg_image_list *l, const fg_image_prep *p, const int *idx, int n,
                         float *x);

/* Whole list into an in-memory dataset, if n x 3 x out_h x out_w float32 fit
 * in max_bytes (0: no limit); else FG_ERR_ARG naming root, the bytes needed
 * and the limit. */
int fg_image_list_load(const fg_image_list *l, const fg_image_prep *p, size_t max_bytes,
                       const char *root, fg_dataset *out);

/* The memory a job may give its data: $FIXGRID_DATA_MAX_BYTES if set, else
 * half of $SLURM_MEM_PER_NODE (MB) if set, else half of physical memory
 * (the splits are copies of the pool, so the pool may be counted twice). */
size_t fg_image_memory_limit(void);

#endif
