# Shared with framing.pyx: the framer decodes straight from its chunk pointer, without making a
# bytes object of each packet body first.

cdef object decode_body(int first_byte, const unsigned char* body, Py_ssize_t n)
cdef int check_header(int first_byte) except -1
