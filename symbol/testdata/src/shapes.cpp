// C++ with namespaces, classes, templates and overloads: function names in the debug info are mangled
// (DW_AT_linkage_name) and addr2line -C demangles them.
namespace geo {

struct Shape {
	virtual int area() const = 0;
};

class Rect : public Shape {
public:
	Rect(int w, int h) : w_(w), h_(h) {}
	int area() const override { return w_ * h_; }

private:
	int w_, h_;
};

class Square : public Rect {
public:
	explicit Square(int s) : Rect(s, s) {}
};

template <typename T> T accumulate(const T *v, int n)
{
	T sum = T();
	for (int i = 0; i < n; i++)
		sum += v[i];
	return sum;
}

__attribute__((noinline)) int measure(const Shape &s) { return s.area(); }
__attribute__((noinline)) int measure(const Shape &a, const Shape &b) { return a.area() + b.area(); }

} // namespace geo

extern "C" int shape_total(int n)
{
	geo::Rect r(n, 3);
	geo::Square sq(n + 1);
	int areas[3] = {geo::measure(r), geo::measure(sq), geo::measure(r, sq)};
	return geo::accumulate(areas, 3);
}

// No C++ runtime: a pure virtual call just stops.
extern "C" void __cxa_pure_virtual() { for (;;) {} }
