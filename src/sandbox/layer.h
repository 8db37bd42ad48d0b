/*
 * layer.h: a group's package layer over the sandbox's system folders (see layer.c).
 */
#ifndef CLAWBOX_LAYER_H
#define CLAWBOX_LAYER_H

#include <stddef.h>

struct sandbox_spec;

/* Where the layer appears inside the sandbox (and where the build put it: a venv records its
 * own path). Must start with "/opt/". */
#define SANDBOX_LAYER_DIR "/opt/clawbox-env"

/* Sets spec's layer to a copy of the host folder dir, and PATH, VIRTUAL_ENV and NODE_PATH for
 * its venv and npm prefix (later --env options may override them). -ENOMEM. */
int sandbox_spec_set_layer(struct sandbox_spec *spec, const char *dir);

/* In the child: mounts /usr below the new root (fd root) as the layer's usr over the host's,
 * read-only, and binds the layer at SANDBOX_LAYER_DIR read-only. layer_fd is the layer's
 * O_PATH fd. -errno, with detail naming the step. */
int layer_mount(int root, int layer_fd, char *detail, size_t detail_size);

#endif
