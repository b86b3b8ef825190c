/* Selects the pinned vmlinux header; CO-RE relocates its offsets on other kernels. */
#include "vmlinux_6.18.h"
