/* The model zoo: lookup over the descriptions that cmake/embed_zoo.cmake
 * generates from the models/NAME.desc files (fg_zoo_names/fg_zoo_descs, sorted by name).
 * Keeping the architectures as data means adding one is a new .desc file,
 * with no code and no registry to update. */
#include "fixgrid/zoo.h"

#include <stdio.h>
#include <string.h>

/* Defined in the generated zoo_table.c. */
extern const int fg_zoo_n;
extern const char *const fg_zoo_names[];
extern const char *const fg_zoo_descs[];

int fg_zoo_count(void)
{
    return fg_zoo_n;
}

const char *fg_zoo_name(int i)
{
    return i >= 0 && i < fg_zoo_n ? fg_zoo_names[i] : NULL;
}

const char *fg_zoo_find(const char *name)
{
    for (int i = 0; name && i < fg_zoo_n; i++)
        if (!strcmp(name, fg_zoo_names[i])) return fg_zoo_descs[i];
    return NULL;
}

void fg_zoo_list(char *buf, size_t size)
{
    size_t used = 0;
    if (size == 0) return;
    buf[0] = '\0';
    for (int i = 0; i < fg_zoo_n && used < size; i++) {
        int w = snprintf(buf + used, size - used, "%s%s", i ? ", " : "", fg_zoo_names[i]);
        if (w < 0) break;
        used += (size_t)w;
    }
}

int fg_zoo_build(const char *name, fg_model **out)
{
    *out = NULL;
    const char *desc = fg_zoo_find(name);
    if (!desc) {
        char known[512];
        fg_zoo_list(known, sizeof known);
        return fg_err(FG_ERR_NOTFOUND, "unknown model '%s' (known: %s)", name ? name : "", known);
    }
    char src[96];
    snprintf(src, sizeof src, "zoo:%s", name);
    return fg_model_parse(desc, src, out);
}
