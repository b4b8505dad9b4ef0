/* Images made with host data (CL_MEM_COPY_HOST_PTR and CL_MEM_USE_HOST_PTR)
 * and read back with a row pitch of 0 (the driver computes it from the
 * element size); the flags and host pointer clGetMemObjectInfo reports;
 * host data without a flag that uses it (CL_INVALID_HOST_PTR); the same
 * with the OpenCL 1.1 calls clCreateImage2D and clCreateImage3D. */
#define CL_TARGET_OPENCL_VERSION 300
#define CL_USE_DEPRECATED_OPENCL_1_1_APIS
#include <CL/cl.h>
#include <stdio.h>
#include <string.h>
int main(void){cl_platform_id p;cl_device_id d;cl_int e;clGetPlatformIDs(1,&p,NULL);clGetDeviceIDs(p,CL_DEVICE_TYPE_ALL,1,&d,NULL);
cl_context c=clCreateContext(NULL,1,&d,NULL,NULL,&e);cl_command_queue q=clCreateCommandQueueWithProperties(c,d,NULL,&e);
unsigned char px[16*8*4]; for(int i=0;i<(int)sizeof px;i++) px[i]=(unsigned char)(i*7);
cl_image_format f={CL_RGBA,CL_UNSIGNED_INT8}; cl_image_desc ds; memset(&ds,0,sizeof ds); ds.image_type=CL_MEM_OBJECT_IMAGE2D; ds.image_width=16; ds.image_height=8;
for(int k=0;k<2;k++){cl_mem_flags fl=k?CL_MEM_USE_HOST_PTR:CL_MEM_COPY_HOST_PTR;
cl_mem m=clCreateImage(c,CL_MEM_READ_ONLY|fl,&f,&ds,px,&e); printf("create %s: %d\n",k?"use":"copy",e);
unsigned char out[sizeof px]; memset(out,0,sizeof out); size_t o[3]={0,0,0},r[3]={16,8,1};
e=clEnqueueReadImage(q,m,CL_TRUE,o,r,0,0,out,0,NULL,NULL); printf("read: %d same: %d\n",e,memcmp(out,px,sizeof px)==0);
cl_mem_flags got; void*hp; clGetMemObjectInfo(m,CL_MEM_FLAGS,sizeof got,&got,NULL); clGetMemObjectInfo(m,CL_MEM_HOST_PTR,sizeof hp,&hp,NULL);
printf("flags %lx host_ptr %s\n",(unsigned long)got,hp==px?"app":(hp?"other":"NULL")); clReleaseMemObject(m);}
{cl_mem m=clCreateImageWithProperties(c,NULL,CL_MEM_READ_ONLY|CL_MEM_COPY_HOST_PTR,&f,&ds,px,&e); printf("create with properties: %d\n",e);
unsigned char out[sizeof px]; memset(out,0,sizeof out); size_t o[3]={0,0,0},r[3]={16,8,1};
e=clEnqueueReadImage(q,m,CL_TRUE,o,r,0,0,out,0,NULL,NULL); printf("read: %d same: %d\n",e,memcmp(out,px,sizeof px)==0); clReleaseMemObject(m);}
for(int k=0;k<2;k++){cl_mem_flags fl=k?CL_MEM_USE_HOST_PTR:CL_MEM_COPY_HOST_PTR; unsigned char out[sizeof px]; size_t o[3]={0,0,0};
cl_mem m=clCreateImage2D(c,CL_MEM_READ_ONLY|fl,&f,16,8,0,px,&e); printf("create 2D (1.1) %s: %d\n",k?"use":"copy",e);
size_t r2[3]={16,8,1}; memset(out,0,sizeof out); e=clEnqueueReadImage(q,m,CL_TRUE,o,r2,0,0,out,0,NULL,NULL); printf("read: %d same: %d\n",e,memcmp(out,px,sizeof px)==0);
cl_mem_flags got; void*hp; clGetMemObjectInfo(m,CL_MEM_FLAGS,sizeof got,&got,NULL); clGetMemObjectInfo(m,CL_MEM_HOST_PTR,sizeof hp,&hp,NULL);
printf("flags %lx host_ptr %s\n",(unsigned long)got,hp==px?"app":(hp?"other":"NULL")); clReleaseMemObject(m);
m=clCreateImage3D(c,CL_MEM_READ_ONLY|fl,&f,4,4,8,0,0,px,&e); printf("create 3D (1.1) %s: %d\n",k?"use":"copy",e);
size_t r3[3]={4,4,8}; memset(out,0,sizeof out); e=clEnqueueReadImage(q,m,CL_TRUE,o,r3,0,0,out,0,NULL,NULL); printf("read: %d same: %d\n",e,memcmp(out,px,sizeof px)==0);
clGetMemObjectInfo(m,CL_MEM_FLAGS,sizeof got,&got,NULL); clGetMemObjectInfo(m,CL_MEM_HOST_PTR,sizeof hp,&hp,NULL);
printf("flags %lx host_ptr %s\n",(unsigned long)got,hp==px?"app":(hp?"other":"NULL")); clReleaseMemObject(m);}
cl_mem bad2=clCreateImage2D(c,CL_MEM_READ_ONLY,&f,16,8,64,NULL,&e); printf("2D (1.1) pitch without host data: %d %s\n",e,bad2?"an image":"NULL"); if(bad2) clReleaseMemObject(bad2);
cl_mem bad=clCreateImage(c,CL_MEM_READ_ONLY,&f,&ds,px,&e); printf("host data without flag: %d %p\n",e,(void*)bad);
return 0;}
