/** The version `shoal --version` prints and the single binary carries. */
export const VERSION = '0.1.0';
