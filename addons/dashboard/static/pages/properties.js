// The properties page (being built).
import {empty} from '../ui.js';

export async function render() {
  return empty('This page is being built.');
}
